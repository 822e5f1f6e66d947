# UperNet on Swin-B from LocalMIM, ADE20K (spec section 5: lr 6e-5, wd 0.01, drop path 0.3; mmseg's
# Swin recipe otherwise: 1500 warmup iterations, poly, 160k iterations of 16 images, 512 crops).
# The backbone is mmpretrain's SwinTransformer (keys = LocalMIM Swin `backbone.*` keys).
#   python tools/train.py \
#       configs/benchmarks/mmsegmentation/upernet_swin-base-p4-w7_8xb2-160k_ade20k-512x512.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/localmim_swin-base.pth
_base_ = 'mmseg::swin/swin-base-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(
    imports=['localmim_mm', 'localmim_mm.runtime.enabled', 'localmim_mm.seg'],
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
                      allow_missing=['norm?.*'])))  # output norms are new downstream
# optimiser and schedule: inherited (AdamW lr 6e-5, wd 0.01, no decay on norms / position tables)

# Corrupt or truncated images fail naming the file (docs/guarantees.md): the stock pipelines with
# mmpretrain's StrictLoadImageFromFile (same arguments) in place of LoadImageFromFile.
train_pipeline = [dict(_base_.train_pipeline[0], type='mmpretrain.StrictLoadImageFromFile'),
                  *_base_.train_pipeline[1:]]
test_pipeline = [dict(_base_.test_pipeline[0], type='mmpretrain.StrictLoadImageFromFile'),
                 *_base_.test_pipeline[1:]]
tta_pipeline = [dict(_base_.tta_pipeline[0], type='mmpretrain.StrictLoadImageFromFile'),
                *_base_.tta_pipeline[1:]]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
