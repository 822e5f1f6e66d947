# Mask R-CNN on a plain ViT-B/16 from LocalMIM through ViTDet's simple feature pyramid (last block's
# stride-16 map -> strides 4, 8, 16, 32 (+ 64 by max pool) for the RPN and RoI heads). The ViT is
# mmpretrain's VisionTransformer (global attention in every block; mmdet's wheel lacks ViTDet's
# windowed variant); its pos_embed is resized to each input's patch grid. Optimiser as ViTDet-B:
# AdamW lr 1e-4, wd 0.1, layer decay 0.7, drop path 0.1; 1x = 12 epochs, 16 images per step.
#   python tools/train.py configs/benchmarks/mmdetection/mask-rcnn_vit-base-p16_sfp_1x_coco.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/localmim_vit-base.pth
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['localmim_mm', 'localmim_mm.runtime.enable', 'localmim_mm.det'],
    allow_failed_imports=False)

checkpoint = 'checkpoints/localmim_vit-base-p16.pth'  # a LocalMIM (runner or published) file
norm_cfg = dict(type='LN2d', eps=1e-6)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch='b',
        img_size=224,  # the pre-training grid: pos_embed loads unchanged, resized per input
        patch_size=16,
        drop_path_rate=0.1,
        out_indices=(11, ),
        out_type='featmap',
        final_norm=False,  # LocalMIM has no shared final norm (spec section 2)
        init_cfg=dict(type='LoudPretrained', checkpoint=checkpoint, prefix='backbone.')),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=768,
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        num_outs=5,
        norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7, flat_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]

# Corrupt or truncated images fail naming the file (docs/guarantees.md): the stock pipelines with
# mmpretrain's StrictLoadImageFromFile (same arguments) in place of LoadImageFromFile.
train_pipeline = [dict(_base_.train_pipeline[0], type='mmpretrain.StrictLoadImageFromFile'),
                  *_base_.train_pipeline[1:]]
test_pipeline = [dict(_base_.test_pipeline[0], type='mmpretrain.StrictLoadImageFromFile'),
                 *_base_.test_pipeline[1:]]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
