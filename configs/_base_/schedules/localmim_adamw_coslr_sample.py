# The pre-training optimisation at CPU scale, for the recipes on the 300 sample images
# (data/sample_cifar): the paper's AdamW and no-decay settings in float32 (OptimWrapper: runs
# anywhere), a warm-up from 1e-3 x lr.
# | batch 32 | blr 1.5e-3 (lr 1.875e-4) | 20 ep, warmup 2 | min lr 1e-6 | float32 |
_base_ = ['./localmim_adamw_coslr.py']
total_batch = 32
blr, epochs, warmup_epochs, min_lr = 1.5e-3, 20, 2, 1e-6  # small batch, short run

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(_base_.optim_wrapper.optimizer, lr=blr * total_batch / 256),
    paramwise_cfg=_base_.optim_wrapper.paramwise_cfg)
param_scheduler = [
    dict(_base_.param_scheduler[0], start_factor=1e-3, end=warmup_epochs),
    dict(_base_.param_scheduler[1], begin=warmup_epochs, end=epochs, eta_min=min_lr),
]
train_cfg = dict(max_epochs=epochs)
auto_scale_lr = dict(base_batch_size=total_batch)
