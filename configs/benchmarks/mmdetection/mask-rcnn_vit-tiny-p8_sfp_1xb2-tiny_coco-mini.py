# CPU smoke recipe: Mask R-CNN on the tiny LocalMIM ViT (patch 8, 8 blocks of width 192, pre-trained
# at 64 px by configs/localmim/localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py) through the simple
# feature pyramid, on the 80 + 79 image COCO subset at <= 256 px, few proposals, 2 epochs.
# Unpack the subset and point the config at it (the three paths below), e.g.
#   tar xzf ../shared/data/coco_mini.tar.gz -C /tmp
#   python tools/train.py \
#       configs/benchmarks/mmdetection/mask-rcnn_vit-tiny-p8_sfp_1xb2-tiny_coco-mini.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/tiny/epoch_20.pth \
#       train_dataloader.dataset.data_root=/tmp/coco_mini/ \
#       val_dataloader.dataset.data_root=/tmp/coco_mini/ \
#       val_evaluator.ann_file=/tmp/coco_mini/annotations/instances_val2017.json
_base_ = ['./mask-rcnn_vit-base-p16_sfp_1x_coco.py']

data_root = 'data/coco_mini/'
checkpoint = 'work_dirs/localmim_vit-tiny-p8_1xb32-coslr-20e_sample/epoch_20.pth'
channels = 64
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=192, num_layers=8, num_heads=3,
                  feedforward_channels=768),
        img_size=64,
        patch_size=8,
        drop_path_rate=0.0,
        out_indices=(7, ),
        init_cfg=dict(checkpoint=checkpoint)),
    # patch 8: x2 / x1 / x0.5 / x0.25 give the usual strides 4 / 8 / 16 / 32
    neck=dict(in_channels=192, out_channels=channels, scale_factors=(2.0, 1.0, 0.5, 0.25)),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, conv_out_channels=channels, fc_out_channels=128),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(score_thr=0.0, max_per_img=20)))  # an untrained model still gets scored

img_scale = (256, 256)
train_pipeline = [
    dict(type='mmpretrain.StrictLoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='mmpretrain.StrictLoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, filter_cfg=dict(filter_empty_gt=True, min_size=8),
                 pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
]
auto_scale_lr = dict(enable=False, base_batch_size=2)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=max_epochs))
