# LocalMIM ViT-L/16, HOG nbins 18 with the frozen gradient bias, 800 epochs (paper: 85.8 top-1).
# | batch 4096 (16 GPUs x 256) | blr 1.5e-4 (lr 2.4e-3) | 800 ep, warmup 40 | min lr 1e-6 | AMP |
_base_ = ['./localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py']
batch_per_gpu, gpus = 256, 16
blr, epochs, warmup_epochs, min_lr = 1.5e-4, 800, 40, 1e-6

model = dict(
    backbone=dict(arch='l', out_indices=[1, 3, 21, 23]),
    neck=dict(in_channels=1024),
    head=dict(in_channels=1024, target_channels=54),
    target_generator=dict(nbins=18, hog_bias=True))
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
