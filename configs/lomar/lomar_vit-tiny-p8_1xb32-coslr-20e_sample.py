# Tiny LoMaR for CPU (demo, tests): 64 px inputs, patch 8 (8x8 grid), 8 blocks of width 192 (the
# tiny LocalMIM encoder), 2 windows of 4x4 patches per image with 12 of 16 masked (floor(16*0.8)),
# trained on the 300 sample images shipped in data/sample_cifar. float32 (OptimWrapper).
# | batch 32 | blr 1.5e-3 (lr 1.875e-4) | 20 ep, warmup 2 | min lr 1e-6 | float32 |
_base_ = [
    '../_base_/datasets/sample_cifar_pretrain.py',
    '../_base_/schedules/localmim_adamw_coslr_sample.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='LoMaR',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='LoMaRViT', img_size=64, patch_size=8, num_windows=2, window_size=4,
                  mask_ratio=0.8, window_sampling='per_image',
                  arch=dict(embed_dims=192, num_layers=8, num_heads=3,
                            feedforward_channels=768)),
    head=dict(type='LoMaRHead', embed_dims=192, patch_size=8, norm_pix=True,
              loss=dict(type='PixelReconstructionLoss', criterion='L2')))

# The relative position tables are position parameters, like pos_embed: no weight decay.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'relative_position_bias_table': dict(decay_mult=0.)}))
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, max_keep_ckpts=2))
