# Tiny LocalMIM for CPU (demo, tests): 64 px inputs, patch 8 (8x8 grid), 8 blocks of width 192,
# taps 1, 3, 5, 7 at scales 4 / 2 / 1 / 0.5 (cells of 2 / 4 / 8 / 16 px), HOG nbins 9, trained on
# the 300 sample images shipped in data/sample_cifar. float32 (OptimWrapper): runs anywhere.
# | batch 32 | blr 1.5e-3 (lr 1.875e-4) | 20 ep, warmup 2 | min lr 1e-6 | float32 |
_base_ = [
    '../_base_/datasets/sample_cifar_pretrain.py',
    '../_base_/schedules/localmim_adamw_coslr_sample.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='LocalMIM',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='LocalMIMViT', img_size=64, patch_size=8, mask_ratio=0.75,
                  arch=dict(embed_dims=192, num_layers=8, num_heads=3,
                            feedforward_channels=768),
                  out_indices=[1, 3, 5, 7]),
    neck=dict(type='MultiLayerNeck', in_channels=192, num_layers=4),
    head=dict(type='LocalMIMHead', in_channels=192, target_channels=27, scales=[4, 2, 1, 0.5],
              embed_dims=128, num_heads=4, depth=1),
    target_generator=dict(type='MultiScaleHOGGenerator', nbins=9, cell_sizes=[2, 4, 8, 16]))

default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, max_keep_ckpts=2))
