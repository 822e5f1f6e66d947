# ViT-B/16 fine-tune for LocalMIM checkpoints pre-trained 100 epochs (the release's ViT README):
# lr 4e-3, layer decay 0.75, cosine to 1e-6; everything else as the 1600-epoch recipe.
_base_ = './vit-base-p16_8xb128-amp-coslr-100e_in1k.py'

lr, min_lr, layer_decay = 4e-3, 1e-6, 0.75
optim_wrapper = dict(optimizer=dict(lr=lr), paramwise_cfg=dict(layer_decay_rate=layer_decay))
param_scheduler = [_base_.param_scheduler[0],
                   dict(_base_.param_scheduler[1], eta_min_ratio=min_lr / lr)]
