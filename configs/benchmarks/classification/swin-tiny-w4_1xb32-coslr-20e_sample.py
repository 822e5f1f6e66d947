# CPU demo / test variant of the Swin fine-tune recipe: fine-tunes the tiny LocalMIM Swin of
# configs/localmim/localmim_swin-tiny_1xb32-coslr-20e_sample.py (128 px, patch 4, window 4,
# width 32,
# depths 2/2/2/2, heads 1/2/4/8) on the shipped sample images (data/sample_cifar, 10 classes) with
# the Swin recipe's pieces (layer decay, mixup / cutmix, RandAug, erasing, drop path, new final norm
# + global average pooling, eval resize + center crop at 256 / 224): batch 32, lr 1e-3, layer decay
# 0.9, 20 epochs (2 warmup), float32.
#   python tools/train.py configs/benchmarks/classification/swin-tiny-w4_1xb32-coslr-20e_sample.py \
#       --cfg-options \
#       model.backbone.init_cfg.checkpoint=checkpoints/localmim_swin-tiny_<date>-<sha>.pth
_base_ = './swin-base-w7_8xb128-amp-coslr-100e_in1k.py'

img_size, eval_resize = 128, 146  # 146 = 128 * 256 / 224
lr, min_lr, layer_decay = 1e-3, 1e-6, 0.9
epochs, warmup_epochs = 20, 2

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
        img_size=img_size,
        window_size=4),
    head=dict(num_classes=10, in_channels=256))
data_preprocessor = dict(num_classes=10)

train_pipeline = [
    dict(type='StrictLoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=[103.53, 116.28, 123.675],
         fill_std=[57.375, 57.12, 58.395]),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='StrictLoadImageFromFile'),
    dict(type='ResizeEdge', scale=eval_resize, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(_delete_=True, type='CustomDataset', data_root='data/sample_cifar',
                 data_prefix='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=50,
    num_workers=2,
    dataset=dict(_delete_=True, type='CustomDataset', data_root='data/sample_cifar',
                 data_prefix='val', pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',  # float32
    optimizer=dict(_base_.optim_wrapper.optimizer, lr=lr),
    constructor=_base_.optim_wrapper.constructor,
    paramwise_cfg=dict(_base_.optim_wrapper.paramwise_cfg, layer_decay_rate=layer_decay))
param_scheduler = [
    dict(_base_.param_scheduler[0], start_factor=1e-3, end=warmup_epochs),
    dict(_base_.param_scheduler[1], begin=warmup_epochs, end=epochs, eta_min_ratio=min_lr / lr),
]
train_cfg = dict(max_epochs=epochs)
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, max_keep_ckpts=2))
