# LocalMIM ViT-B/16, HOG nbins 9, 1600 epochs (paper: 84.0 top-1 after fine-tuning).
# | batch 2048 (8 GPUs x 256) | blr 2e-4 (lr 1.6e-3) | 1600 ep, warmup 40 | min lr 1e-6 | AMP |
_base_ = [
    '../_base_/models/localmim_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs256_localmim.py',
    '../_base_/schedules/localmim_adamw_coslr.py',
    '../_base_/default_runtime.py',
]
batch_per_gpu, gpus = 256, 8
blr, epochs, warmup_epochs, min_lr = 2e-4, 1600, 40, 1e-6

train_dataloader = dict(batch_size=batch_per_gpu)
optim_wrapper = dict(optimizer=dict(lr=blr * batch_per_gpu * gpus / 256))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epochs - warmup_epochs, eta_min=min_lr, by_epoch=True,
         begin=warmup_epochs, end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=epochs)
auto_scale_lr = dict(base_batch_size=batch_per_gpu * gpus)
