# Mask R-CNN + FPN, Swin-B backbone initialised from a LocalMIM checkpoint: the paper's COCO setting
# (spec section 5: LocalMIM-HOG 400 ep reaches 50.7 AP box / 44.9 AP mask), on mmdet's Swin recipe
# (AdamW lr 1e-4, wd 0.05 without decay on norms / position tables, 1x = 12 epochs, 16 images per
# step as 8 GPUs x 2). The backbone is mmpretrain's SwinTransformer, whose keys are exactly the
# `backbone.*` keys of a LocalMIM Swin checkpoint (mmdet's own Swin would load it silently; see
# docs/transfer_det_seg.md).
#   python tools/train.py configs/benchmarks/mmdetection/mask-rcnn_swin-base-p4-w7_fpn_1x_coco.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/localmim_swin-base.pth
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
custom_imports = dict(
    imports=['localmim_mm', 'localmim_mm.runtime.enable', 'localmim_mm.det'],
    allow_failed_imports=False)

checkpoint = 'checkpoints/localmim_swin-base-p4-w7.pth'  # a LocalMIM (runner or published) file
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.SwinTransformer',
        arch='base',  # embed 128, depths [2, 2, 18, 2], heads [4, 8, 16, 32]
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
