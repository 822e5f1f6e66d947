# Swin-B fine-tune for LocalMIM checkpoints pre-trained 100 epochs (the release's Swin README):
# lr 5e-3; everything else as the 400-epoch recipe.
_base_ = './swin-base-w7_8xb128-amp-coslr-100e_in1k.py'

lr, min_lr = 5e-3, 2.5e-7
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [_base_.param_scheduler[0],
                   dict(_base_.param_scheduler[1], eta_min_ratio=min_lr / lr)]
