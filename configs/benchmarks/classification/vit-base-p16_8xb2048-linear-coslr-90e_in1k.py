# Linear probing of a LocalMIM ViT-B/16 on ImageNet-1k. The paper and the release report none; this
# is MAE's protocol (as in mmpretrain's MAE benchmark): frozen encoder, BatchNorm (no affine) + a
# linear layer, LARS lr 6.4 (0.1 x 16384 / 256) at batch 16384 (8 GPUs x 2048), no weight decay,
# 90 epochs (10 warmup, cosine to 0), RandomResizedCrop 224 + flip; eval resize 256 + crop 224.
# Feature: the global average of the last block's tokens (LocalMIM has no shared final norm;
# the new ln2 stays frozen at identity), the same feature the fine-tune recipe pools.
#   python tools/train.py \
#       configs/benchmarks/classification/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/localmim_vit-base-p16.pth
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32_pil_resize.py',
    '../../_base_/default_runtime.py',
]
custom_imports = dict(imports=['localmim_mm', 'localmim_mm.runtime.enabled'],
                      allow_failed_imports=False)

epochs, warmup_epochs = 90, 10

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='base',
        img_size=224,
        patch_size=16,
        frozen_stages=12,
        out_type='avg_featmap',
        final_norm=False,
        init_cfg=dict(type='LoudPretrained', checkpoint='', prefix='backbone.',
                      allow_missing=['ln2.*'])),
    neck=dict(type='ClsBatchNormNeck', input_features=768),
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.01)]))

# Corrupt or truncated images fail naming the file (docs/guarantees.md): the stock pipelines with
# StrictLoadImageFromFile (same arguments) in place of LoadImageFromFile.
train_pipeline = [dict(_base_.train_pipeline[0], type='StrictLoadImageFromFile'),
                  *_base_.train_pipeline[1:]]
test_pipeline = [dict(_base_.test_pipeline[0], type='StrictLoadImageFromFile'),
                 *_base_.test_pipeline[1:]]
train_dataloader = dict(batch_size=2048, num_workers=8, drop_last=True,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=256, num_workers=8, drop_last=False,
                      dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='LARS', lr=6.4, weight_decay=0.0, momentum=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=warmup_epochs, end=epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=16384)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3), logger=dict(interval=10))
