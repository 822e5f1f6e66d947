# LocalMIM Swin-B (window 7), HOG nbins 18 + bias, 100 epochs (paper: 83.8 top-1 after fine-tuning).
# | batch 2048 (8 GPUs x 256) | blr 1e-4 (lr 8e-4) | 100 ep, warmup 10 | min lr 0 | AMP |
_base_ = ['./localmim_swin-base-w7_8xb256-amp-coslr-400e_in1k.py']
blr, epochs, warmup_epochs, min_lr = 1e-4, 100, 10, 0.

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epochs - warmup_epochs, eta_min=min_lr, by_epoch=True,
         begin=warmup_epochs, end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=epochs)
