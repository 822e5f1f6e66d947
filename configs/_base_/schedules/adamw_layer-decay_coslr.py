# The fine-tuning optimisation of the release (after BEiT / MAE): AdamW (0.9, 0.999), wd 0.05 with
# none on 1-D parameters (norms, biases; recipes add their position parameters in custom_keys),
# layer-wise lr decay (mmpretrain's LearningRateDecayOptimWrapperConstructor: the lr of a layer is
# lr x layer_decay ^ its depth from the top), AMP; linear warm-up from 1e-4 x lr, then a
# per-iteration half cosine to min_lr x each group's lr scale (eta_min_ratio; mmengine takes the
# cosine's T_max = end - begin). The values are the ViT-B/16 recipe's (batch 1024).
# A recipe with another lr or length moves them, e.g.
#   optim_wrapper = dict(optimizer=dict(lr=lr), paramwise_cfg=dict(layer_decay_rate=layer_decay))
#   param_scheduler = [dict(_base_.param_scheduler[0], end=warmup_epochs),
#                      dict(_base_.param_scheduler[1], begin=warmup_epochs, end=epochs,
#                           eta_min_ratio=min_lr / lr)]
lr, min_lr, layer_decay = 2e-3, 1e-5, 0.65
epochs, warmup_epochs = 100, 20

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=lr, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=layer_decay, flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=min_lr / lr, by_epoch=True,
         begin=warmup_epochs, end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
