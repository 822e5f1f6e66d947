# LocalMIM ViT-L/16, HOG nbins 18 with the frozen gradient bias, 800 epochs (paper: 85.8 top-1).
# | batch 4096 (16 GPUs x 256) | blr 1.5e-4 (lr 2.4e-3) | 800 ep, warmup 40 | min lr 1e-6 | AMP |
_base_ = ['./localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py']
gpus, blr, epochs = 16, 1.5e-4, 800
total_batch = gpus * 256

model = dict(
    backbone=dict(arch='l', out_indices=[1, 3, 21, 23]),
    neck=dict(in_channels=1024),
    head=dict(in_channels=1024, target_channels=54),
    target_generator=dict(nbins=18, hog_bias=True))
optim_wrapper = dict(optimizer=dict(lr=blr * total_batch / 256))
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=epochs)]
train_cfg = dict(max_epochs=epochs)
auto_scale_lr = dict(base_batch_size=total_batch)
