# Mask R-CNN + FPN, Swin-B from LocalMIM, mmdet's 3x recipe (36 epochs, multi-scale + crop
# augmentation of DETR). Backbone and loading as in the 1x config.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'
custom_imports = dict(
    imports=['localmim_mm', 'localmim_mm.runtime.enable', 'localmim_mm.det'],
    allow_failed_imports=False)

checkpoint = 'checkpoints/localmim_swin-base-p4-w7.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.SwinTransformer',
        arch='base',
        img_size=224,
        window_size=7,
        pad_small_map=True,  # like mmdet's Swin: maps smaller than a window are padded
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='LoudPretrained', checkpoint=checkpoint, prefix='backbone.',
                      allow_missing=['norm?.*'])),  # output norms are new downstream
    neck=dict(in_channels=[128, 256, 512, 1024]))

# Corrupt or truncated images fail naming the file (docs/guarantees.md): the stock pipelines with
# mmpretrain's StrictLoadImageFromFile (same arguments) in place of LoadImageFromFile.
train_pipeline = [dict(_base_.train_pipeline[0], type='mmpretrain.StrictLoadImageFromFile'),
                  *_base_.train_pipeline[1:]]
test_pipeline = [dict(_base_.test_pipeline[0], type='mmpretrain.StrictLoadImageFromFile'),
                 *_base_.test_pipeline[1:]]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
