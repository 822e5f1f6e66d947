# Swin-B fine-tune for LocalMIM checkpoints pre-trained 100 epochs (the release's Swin README):
# lr 5e-3; everything else as the 400-epoch recipe.
_base_ = './swin-base-w7_8xb128-amp-coslr-100e_in1k.py'

lr, min_lr = 5e-3, 2.5e-7
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=80, eta_min_ratio=min_lr / lr, by_epoch=True, begin=20,
         end=100, convert_to_iter_based=True),
]
