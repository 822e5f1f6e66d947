# UperNet on ViT-B/16 from LocalMIM, ADE20K, the paper's recipe (spec section 5; 49.5 mIoU, MAE
# 48.1): a BEiT-style ViT (mmpretrain BEiTViT: relative position bias per block, layer scale 1.0,
# plus the checkpoint's absolute position embedding; q/k/v biases as in the checkpoint), outputs of
# blocks [1, 3, 9, 11] made a 4-level pyramid by mmseg's Feature2Pyramid (x4: two deconvs with
# norm + GELU, x2 deconv, x1, x0.5 pool); AdamW lr 4e-4, wd 0.05, layer decay 0.65, 1500 warmup
# iterations then poly, 160k iterations of 16 images (8 GPUs x 2), 512 crops, sliding test 512/341.
#   python tools/train.py \
#       configs/benchmarks/mmsegmentation/upernet_vit-base-p16_8xb2-160k_ade20k-512x512.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/localmim_vit-base.pth
_base_ = [
    'mmseg::_base_/models/upernet_mae.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(
    imports=['localmim_mm', 'localmim_mm.runtime.enabled', 'localmim_mm.seg'],
    allow_failed_imports=False)

checkpoint = 'checkpoints/localmim_vit-base-p16.pth'  # a LocalMIM (runner or published) file
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='mmpretrain.BEiTViT',
        arch='base',
        img_size=crop_size,  # the relative position tables are built for this grid
        patch_size=16,
        out_indices=[1, 3, 9, 11],
        out_type='featmap',
        bias=True,  # full q/k/v bias, the layout of LocalMIM's (mmpretrain ViT) checkpoints
        use_abs_pos_emb=True,
        use_rel_pos_bias=True,
        layer_scale_init_value=1.0,
        drop_path_rate=0.1,
        final_norm=False,
        init_cfg=dict(
            type='LoudPretrained', checkpoint=checkpoint, prefix='backbone.',
            # new in the BEiT-style ViT: relative position tables (std 0.02) and layer scales
            allow_missing=['layers.*.attn.relative_position_bias_table', 'layers.*.gamma_?'])),
    neck=dict(embed_dim=768, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[768, 768, 768, 768], channels=768, num_classes=150),
    auxiliary_head=dict(in_channels=768, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65, flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=1500, end=160000),
]
# Corrupt or truncated images fail naming the file (docs/guarantees.md): the stock pipelines with
# mmpretrain's StrictLoadImageFromFile (same arguments) in place of LoadImageFromFile.
train_pipeline = [dict(_base_.train_pipeline[0], type='mmpretrain.StrictLoadImageFromFile'),
                  *_base_.train_pipeline[1:]]
test_pipeline = [dict(_base_.test_pipeline[0], type='mmpretrain.StrictLoadImageFromFile'),
                 *_base_.test_pipeline[1:]]
tta_pipeline = [dict(_base_.tta_pipeline[0], type='mmpretrain.StrictLoadImageFromFile'),
                *_base_.tta_pipeline[1:]]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
