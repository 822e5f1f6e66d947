# Fine-tune a LocalMIM ViT-L/16 (800-epoch checkpoint) on ImageNet-1k (spec section 5; the release's
# ViT README): batch 1024, lr 3e-3, layer decay 0.75, 50 epochs (5 warmup, cosine to 1e-6), drop
# path 0.2; augmentation, pooling and evaluation as the ViT-B recipe.
#   python tools/train.py \
#       configs/benchmarks/classification/vit-large-p16_8xb128-amp-coslr-50e_in1k.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/localmim_vit-large-p16.pth
_base_ = './vit-base-p16_8xb128-amp-coslr-100e_in1k.py'

lr, min_lr, layer_decay = 3e-3, 1e-6, 0.75
epochs, warmup_epochs = 50, 5

model = dict(backbone=dict(arch='large', drop_path_rate=0.2), head=dict(in_channels=1024))
optim_wrapper = dict(optimizer=dict(lr=lr), paramwise_cfg=dict(layer_decay_rate=layer_decay))
param_scheduler = [
    dict(_base_.param_scheduler[0], end=warmup_epochs),
    dict(_base_.param_scheduler[1], begin=warmup_epochs, end=epochs, eta_min_ratio=min_lr / lr),
]
train_cfg = dict(max_epochs=epochs)
