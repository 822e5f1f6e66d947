# LocalMIM Swin-B (window 7), HOG nbins 18 + bias, 400 epochs (paper: 84.1 top-1 after fine-tuning).
# | batch 2048 (8 GPUs x 256) | blr 1e-4 (lr 8e-4) | 400 ep, warmup 40 | min lr 0 | AMP |
# Per-sample masks (backbone.mask_shared=False); no weight decay on relative position tables.
_base_ = [
    '../_base_/models/localmim_swin-base-w7.py',
    '../_base_/datasets/imagenet_bs256_localmim.py',
    '../_base_/schedules/localmim_adamw_coslr.py',
    '../_base_/default_runtime.py',
]
gpus, blr, epochs, min_lr = 8, 1e-4, 400, 0.
total_batch = gpus * 256

optim_wrapper = dict(
    optimizer=dict(lr=blr * total_batch / 256),
    paramwise_cfg=dict(custom_keys={
        'relative_position_bias_table': dict(decay_mult=0.),
        'absolute_pos_embed': dict(decay_mult=0.),
    }))
param_scheduler = [_base_.param_scheduler[0],
                   dict(_base_.param_scheduler[1], end=epochs, eta_min=min_lr)]
train_cfg = dict(max_epochs=epochs)
