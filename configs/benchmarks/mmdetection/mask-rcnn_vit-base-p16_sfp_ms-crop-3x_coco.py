# Mask R-CNN ViT-B/16 (LocalMIM) + simple feature pyramid, 3x schedule (36 epochs) with mmdet's
# multi-scale + crop augmentation (the Swin 3x recipe's pipeline).
_base_ = [
    './mask-rcnn_vit-base-p16_sfp_1x_coco.py',
]

max_epochs = 36
train_pipeline = [
    dict(type='mmpretrain.StrictLoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize',
                  scales=[(s, 1333) for s in range(480, 801, 32)], keep_ratio=True)],
            [dict(type='RandomChoiceResize',
                  scales=[(400, 1333), (500, 1333), (600, 1333)], keep_ratio=True),
             dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                  allow_negative_crop=True),
             dict(type='RandomChoiceResize',
                  scales=[(s, 1333) for s in range(480, 801, 32)], keep_ratio=True)],
        ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33],
         gamma=0.1),
]
