# Fine-tune a LocalMIM Swin-B (window 7, 400-epoch HOG checkpoint) on ImageNet-1k (spec section 5;
# the release's Swin README): batch 2048 (8 GPUs x 128, 2 accumulation steps), AdamW (0.9, 0.999),
# lr 4e-3, wd 0.05 (none on 1-D params, relative position tables, absolute pos embed), layer decay
# 0.9, 100 epochs (20 warmup, the release's default; cosine to 2.5e-7 x the group's lr scale), drop
# path 0.1, global average pooling after a new final LayerNorm (norm3), RandAugment m9 mstd 0.5,
# mixup 0.8 / cutmix 1.0, label smoothing 0.1, random erasing 0.25; eval resize 256 + crop 224.
# Pixel-target 400-epoch checkpoint: batch 1024 (--cfg-options optim_wrapper.accumulative_counts=1);
# 100-epoch checkpoints: swin-base-w7_8xb128-amp-lr5e-3-coslr-100e_in1k.py.
#   python tools/train.py \
#       configs/benchmarks/classification/swin-base-w7_8xb128-amp-coslr-100e_in1k.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/localmim_swin-base-w7.pth
_base_ = [
    '../../_base_/models/classifier_finetune.py',
    '../../_base_/datasets/imagenet_bs128_finetune.py',  # RandAug m9, erasing 0.25, 256/224
    '../../_base_/schedules/adamw_layer-decay_coslr.py',
    '../../_base_/default_runtime.py',
]
custom_imports = dict(imports=['localmim_mm', 'localmim_mm.runtime.enabled'],
                      allow_failed_imports=False)

lr, min_lr, layer_decay = 4e-3, 2.5e-7, 0.9  # 100 epochs, 20 warm-up: the base's

model = dict(
    backbone=dict(
        type='SwinTransformer',
        arch='base',
        img_size=224,
        window_size=7,
        drop_path_rate=0.1,
        # LocalMIM normalises each stage tap in its neck: the classifier's final norm is new
        init_cfg=dict(type='LoudPretrained', checkpoint='', prefix='backbone.',
                      allow_missing=['norm3.*'])),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(in_channels=1024))
optim_wrapper = dict(
    accumulative_counts=2,
    optimizer=dict(lr=lr),
    paramwise_cfg=dict(
        layer_decay_rate=layer_decay,
        custom_keys={
            '.absolute_pos_embed': dict(decay_mult=0.0),
            '.relative_position_bias_table': dict(decay_mult=0.0)
        }))
param_scheduler = [_base_.param_scheduler[0],
                   dict(_base_.param_scheduler[1], eta_min_ratio=min_lr / lr)]
auto_scale_lr = dict(base_batch_size=2048)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3))
