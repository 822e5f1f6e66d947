# Fine-tune a LocalMIM ViT-B/16 on ImageNet-1k (spec section 5; the release's ViT README), recipe
# for 1600-epoch checkpoints: batch 1024 (8 GPUs x 128), AdamW (0.9, 0.999), lr 2e-3, wd 0.05
# (none on 1-D params, cls_token, pos_embed), layer decay 0.65, 100 epochs (20 warmup, cosine to
# 1e-5 x the group's lr scale, as the release), drop path 0.1, global average pooling (no final
# norm; the pooled feature goes through a new LayerNorm, ln2), RandAugment m9 mstd 0.5, mixup 0.8 /
# cutmix 1.0, label smoothing 0.1, random erasing 0.25; eval resize 256 + center crop 224.
# 100-epoch checkpoints: vit-base-p16_8xb128-amp-lr4e-3-ld0.75-coslr-100e_in1k.py.
#   python tools/train.py \
#       configs/benchmarks/classification/vit-base-p16_8xb128-amp-coslr-100e_in1k.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/localmim_vit-base-p16.pth
_base_ = [
    '../../_base_/models/classifier_finetune.py',
    '../../_base_/datasets/imagenet_bs128_finetune.py',  # RandAug m9, erasing 0.25, 256/224
    '../../_base_/schedules/adamw_layer-decay_coslr.py',  # lr 2e-3, min 1e-5, ld 0.65, 100 ep
    '../../_base_/default_runtime.py',
]
custom_imports = dict(imports=['localmim_mm', 'localmim_mm.runtime.enabled'],
                      allow_failed_imports=False)

model = dict(
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
    head=dict(in_channels=768))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    '.cls_token': dict(decay_mult=0.0),
    '.pos_embed': dict(decay_mult=0.0)
}))
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3))
