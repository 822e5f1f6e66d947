# LocalMIM ViT-B/16, HOG nbins 9, 100 epochs (paper: 83.3 top-1 after fine-tuning, 70 GPU-hours).
# | batch 2048 | blr 2e-4 (lr 1.6e-3) | 100 ep, warmup 10 | min lr 1e-6 | AMP |
_base_ = ['./localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py']
blr, epochs, warmup_epochs, min_lr = 2e-4, 100, 10, 1e-6

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epochs - warmup_epochs, eta_min=min_lr, by_epoch=True,
         begin=warmup_epochs, end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=epochs)
