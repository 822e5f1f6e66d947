# CPU recipe: UperNet on the tiny LocalMIM ViT (patch 8, 8 blocks of width 192; pre-trained at 64 px
# by configs/localmim/localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py) on CamVid (SegNet's 11
# classes, void = 11 ignored), frames resized to 171x128, 128 crops. Same model family as the ViT-B
# ADE20K recipe (BEiT-style ViT, taps [1, 3, 5, 7], Feature2Pyramid, layer decay); patch 8 makes
# the pyramid x2 / x1 / x0.5 / x0.25 (strides 4 / 8 / 16 / 32). Unpack CamVid and point at it:
#   tar xzf ../shared/data/camvid.tar.gz -C /tmp
#   python tools/train.py \
#       configs/benchmarks/mmsegmentation/upernet_vit-tiny-p8_1xb4-tiny_camvid-128x128.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=CKPT \
#       train_dataloader.dataset.data_root=/tmp/camvid val_dataloader.dataset.data_root=/tmp/camvid
_base_ = ['./upernet_vit-base-p16_8xb2-160k_ade20k-512x512.py']

data_root = 'data/camvid'
checkpoint = 'work_dirs/localmim_vit-tiny-p8_1xb32-coslr-20e_sample/epoch_20.pth'
crop_size = (128, 128)
void = 11
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs a process group
model = dict(
    data_preprocessor=dict(size=crop_size, seg_pad_val=void),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=192, num_layers=8, num_heads=3,
                  feedforward_channels=768),
        img_size=crop_size,
        patch_size=8,
        out_indices=[1, 3, 5, 7],
        drop_path_rate=0.0,
        init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(embed_dim=192, rescales=[2, 1, 0.5, 0.25], norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[192] * 4, channels=128, num_classes=11, ignore_index=void,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=192, channels=64, num_classes=11, ignore_index=void,
                        norm_cfg=norm_cfg),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(86, 86)))

scale = (171, 128)  # 480x360 frames at a short side of 128 (the crop: the ViT's
# relative position tables fix its input size, and the slide test never crops below 128)
train_pipeline = [
    dict(type='mmpretrain.StrictLoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=scale, ratio_range=(1.0, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75, ignore_index=void),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='mmpretrain.StrictLoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True, type='CamVidDataset', data_root=data_root,
        data_prefix=dict(img_path='train', seg_map_path='trainannot'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True, type='CamVidDataset', data_root=data_root,
        data_prefix=dict(img_path='val', seg_map_path='valannot'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'], ignore_index=void)
test_evaluator = val_evaluator

iters, warmup = 400, 40
optim_wrapper = dict(optimizer=dict(lr=4e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=warmup, end=iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=iters, max_keep_ckpts=1),
    visualization=dict(draw=False))
