# Fine-tune a LocalMIM ViT-B/16 on ImageNet-1k (spec section 5; the release's ViT README), recipe
# for 1600-epoch checkpoints: batch 1024 (8 GPUs x 128), AdamW (0.9, 0.999), lr 2e-3, wd 0.05
# (none on 1-D params, cls_token, pos_embed), layer decay 0.65, 100 epochs (20 warmup, cosine to
# 1e-5 x the group's lr scale, as the release), drop path 0.1, global average pooling (no final
# norm; the pooled feature goes through a new LayerNorm, ln2), RandAugment m9 mstd 0.5, mixup 0.8 /
# cutmix 1.0, label smoothing 0.1, random erasing 0.25; eval resize 256 + center crop 224.
# 100-epoch checkpoints: vit-base-p16_8xb128-amp-lr4e-3-ld0.75-coslr-100e_in1k.py.
#   python tools/train.py configs/benchmarks/classification/vit-base-p16_8xb128-amp-coslr-100e_in1k.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/localmim_vit-base-p16.pth
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',  # RandAug m9, erasing 0.25, 256/224
    '../../_base_/default_runtime.py',
]
custom_imports = dict(imports=['localmim_mm', 'localmim_mm.transfer'], allow_failed_imports=False)

lr, min_lr, layer_decay = 2e-3, 1e-5, 0.65
epochs, warmup_epochs = 100, 20

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='base',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        out_type='avg_featmap',
        final_norm=False,
        # checkpoint: a published / runner LocalMIM file (or a converted release one)
        init_cfg=dict(type='LoudPretrained', checkpoint='', prefix='backbone.',
                      allow_missing=['ln2.*'])),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))

# Corrupt or truncated images fail naming the file (docs/guarantees.md): the stock pipelines with
# StrictLoadImageFromFile (same arguments) in place of LoadImageFromFile.
train_pipeline = [dict(_base_.train_pipeline[0], type='StrictLoadImageFromFile'),
                  *_base_.train_pipeline[1:]]
test_pipeline = [dict(_base_.test_pipeline[0], type='StrictLoadImageFromFile'),
                 *_base_.test_pipeline[1:]]
train_dataloader = dict(batch_size=128, num_workers=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=128, num_workers=8, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=lr, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=layer_decay,
        flat_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epochs - warmup_epochs, eta_min_ratio=min_lr / lr,
         by_epoch=True, begin=warmup_epochs, end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3))
