# The paper's pre-training optimisation (spec section 5): AdamW (0.9, 0.95), wd 0.05 with no decay
# on norms, biases and tokens, lr = blr * batch / 256, linear warmup then half-cycle cosine per
# iteration, AMP. The values are the ViT-B/16 1600-epoch recipe's. The cosine's T_max is left to
# mmengine, which takes end - begin (after convert_to_iter_based has scaled both to iterations).
# A recipe of another length or floor moves this schedule's phases, e.g.
#   param_scheduler = [dict(_base_.param_scheduler[0], end=warmup_epochs),
#                      dict(_base_.param_scheduler[1], begin=warmup_epochs, end=epochs)]
blr = 2e-4
total_batch = 2048
epochs = 1600
warmup_epochs = 40
min_lr = 1e-6

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=blr * total_batch / 256, betas=(0.9, 0.95),
                   weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
        }))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=min_lr, by_epoch=True, begin=warmup_epochs,
         end=epochs, convert_to_iter_based=True),
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs)
# lr above is for `total_batch`; --auto-scale-lr rescales it to the real total batch.
auto_scale_lr = dict(base_batch_size=total_batch)
