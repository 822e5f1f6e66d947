# Tiny LoMaR for CPU (demo, tests): 64 px inputs, patch 8 (8x8 grid), 8 blocks of width 192 (the
# tiny LocalMIM encoder), 2 windows of 4x4 patches per image with 12 of 16 masked (floor(16*0.8)),
# trained on the 300 sample images shipped in data/sample_cifar. float32 (OptimWrapper).
_base_ = [
    '../_base_/datasets/sample_cifar_pretrain.py',
    '../_base_/schedules/localmim_adamw_coslr.py',
    '../_base_/default_runtime.py',
]
batch_size = 32
blr, epochs, warmup_epochs, min_lr = 1.5e-3, 20, 2, 1e-6  # small batch, short run

model = dict(
    type='LoMaR',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='LoMaRViT', img_size=64, patch_size=8, num_windows=2, window_size=4,
                  mask_ratio=0.8, window_sampling='per_image',
                  arch=dict(embed_dims=192, num_layers=8, num_heads=3,
                            feedforward_channels=768)),
    head=dict(type='LoMaRHead', embed_dims=192, patch_size=8, norm_pix=True,
              loss=dict(type='PixelReconstructionLoss', criterion='L2')))

train_dataloader = dict(batch_size=batch_size)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=blr * batch_size / 256, betas=(0.9, 0.95),
                   weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epochs - warmup_epochs, eta_min=min_lr, by_epoch=True,
         begin=warmup_epochs, end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=epochs)
auto_scale_lr = dict(base_batch_size=batch_size)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, max_keep_ckpts=2))
