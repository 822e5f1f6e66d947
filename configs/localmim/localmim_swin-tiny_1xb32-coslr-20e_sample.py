# Tiny LocalMIM Swin for CPU (demo, tests): 128 px inputs, patch 4, window 4, a 4-stage Swin of
# width 32 (depths 2/2/2/2, heads 1/2/4/8), 32-px mask cells (4x4 grid, 12 of 16 masked per
# sample), visible-token encoder; taps after the PatchMerging of stages 1-3 and stage 4 (32x32 ->
# 16x16x64, 8x8x128, 4x4x256, 4x4x256); decoders 32 / 64 / 64 / 64 wide, 1 block, 2 heads; HOG
# nbins 18 + bias pooled over 8 / 16 / 32 / 32 px; the 300 sample images of data/sample_cifar.
# | batch 32 | blr 1.5e-3 | 20 ep, warmup 2 | min lr 0 | float32 (OptimWrapper): runs anywhere |
_base_ = [
    '../_base_/datasets/sample_cifar_pretrain.py',
    '../_base_/schedules/localmim_adamw_coslr_sample.py',
    '../_base_/default_runtime.py',
]
img_size, min_lr = 128, 0.

model = dict(
    type='LocalMIM',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='LocalMIMSwin', img_size=img_size, window_size=4, mask_ratio=0.75,
                  mask_unit=32, mask_shared=False, encoder_mode='visible',
                  arch=dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
                  out_indices=[0, 1, 2, 3], drop_path_rate=0.),
    neck=dict(type='MultiLayerNeck', in_channels=[64, 128, 256, 256], num_layers=4),
    head=dict(type='LocalMIMHead', in_channels=[64, 128, 256, 256], target_channels=54,
              scales=[1, 1, 1, 1], rescale=False, token_ratios=[4, 2, 1, 1],
              with_cls_token=False, embed_dims=[32, 64, 64, 64], num_heads=2, depth=1),
    target_generator=dict(type='MultiScaleHOGGenerator', nbins=18, cell_sizes=[8, 16, 32, 32],
                          hog_bias=True))

train_pipeline = [_base_.train_pipeline[0], dict(_base_.train_pipeline[1], scale=img_size),
                  *_base_.train_pipeline[2:]]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(
    _delete_=True,  # Swin's position parameters; it has no pos_embed or cls_token
    mask_token=dict(decay_mult=0.),
    relative_position_bias_table=dict(decay_mult=0.),
    absolute_pos_embed=dict(decay_mult=0.))))
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], eta_min=min_lr)]
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, max_keep_ckpts=2))
