# Mask R-CNN on a LocalMIM ViT-B/16 with ViTDet's recipe (Li et al., ECCV 2022; detectron2's
# mask_rcnn_vitdet_b_100ep and mmdet's projects/ViTDet, which report 51.6 box / 45.7 mask AP with
# an MAE ViT-B):
#   backbone  ViTDet (localmim_mm.det): window attention 14 x 14 (the 224-px pre-training grid) in
#             blocks 0,1,3,4,6,7,9,10, global attention in 2,5,8,11, decomposed relative position
#             bias in every block (new, zero-initialised), drop path 0.1, no class token
#   neck      simple feature pyramid from the last block (strides 4..32, + 64 by max pool), LN
#   heads     RPN with 2 convs; 4conv1fc box head and mask head with LN
#   data      large-scale jitter at 1024: resize x0.1-2.0, crop 1024, flip, pad to 1024 x 1024
#   optimiser AdamW (0.9, 0.999), lr 1e-4, wd 0.1 (none on norms, biases, pos_embed), layer decay
#             0.7, 250 warm-up iterations, lr x0.1 at 88 and 96 epochs, AMP
#   schedule  100 epochs = 184375 iterations of 64 images (8 GPUs x 8; another split: keep 64 or
#             pass --auto-scale-lr); evaluation and checkpoint every 10k iterations and at the end
# On GPUs with less memory: --cfg-options model.backbone.with_cp=True (gradient checkpointing).
#   tools/dist_train.sh \
#   configs/benchmarks/mmdetection/mask-rcnn_vit-base-p16-vitdet_sfp_8xb8-amp-lsj-100e_coco.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/localmim_vit-base.pth
_base_ = ['./mask-rcnn_vit-base-p16_sfp_1x_coco.py']  # model heads, neck, data sets, optimiser

checkpoint = 'checkpoints/localmim_vit-base-p16.pth'  # a LocalMIM (runner or published) file
image_size = (1024, 1024)
model = dict(
    backbone=dict(
        _delete_=True,
        type='ViTDet',
        arch='base',
        img_size=224,  # the pre-training grid: pos_embed loads unchanged, resized per input
        patch_size=16,
        input_size=image_size,  # global blocks' relative position tables: 64 x 64 grid
        window_size=14,
        global_attn_indexes=(2, 5, 8, 11),
        drop_path_rate=0.1,
        out_indices=(11, ),
        with_cp=False,
        init_cfg=dict(type='LoudPretrained', checkpoint=checkpoint, prefix='backbone.',
                      allow_missing=['layers.*.attn.rel_pos_?'])))

train_pipeline = [
    dict(type='mmpretrain.StrictLoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size,
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='mmpretrain.StrictLoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),  # longer side 1024
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    dataset=dict(filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    paramwise_cfg=dict(custom_keys={'backbone.pos_embed': dict(decay_mult=0.0)}))

max_iters, interval = 184375, 10000  # 184375 x 64 images = 100 epochs of COCO train2017
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
         milestones=[163889, 177546], gamma=0.1),  # 88 and 96 epochs
]
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=interval, save_last=True, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=64)
