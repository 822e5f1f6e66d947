# LocalMIM Swin-B (window 7), HOG nbins 18 + bias, 400 epochs (paper: 84.1 top-1 after fine-tuning).
# | batch 2048 (8 GPUs x 256) | blr 1e-4 (lr 8e-4) | 400 ep, warmup 40 | min lr 0 | AMP |
# Per-sample masks (backbone.mask_shared=False); no weight decay on relative position tables.
_base_ = [
    '../_base_/models/localmim_swin-base-w7.py',
    '../_base_/datasets/imagenet_bs256_localmim.py',
    '../_base_/schedules/localmim_adamw_coslr.py',
    '../_base_/default_runtime.py',
]
batch_per_gpu, gpus = 256, 8
blr, epochs, warmup_epochs, min_lr = 1e-4, 400, 40, 0.

train_dataloader = dict(batch_size=batch_per_gpu)
optim_wrapper = dict(
    optimizer=dict(lr=blr * batch_per_gpu * gpus / 256),
    paramwise_cfg=dict(custom_keys={
        'relative_position_bias_table': dict(decay_mult=0.),
        'absolute_pos_embed': dict(decay_mult=0.),
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epochs - warmup_epochs, eta_min=min_lr, by_epoch=True,
         begin=warmup_epochs, end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=epochs)
auto_scale_lr = dict(base_batch_size=batch_per_gpu * gpus)
