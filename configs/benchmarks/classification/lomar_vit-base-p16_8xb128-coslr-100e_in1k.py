# Fine-tune a LoMaR ViT-B/16 checkpoint on ImageNet-1k with a plain mmpretrain VisionTransformer.
# The ViT-B recipe of spec section 5 (mmpretrain's MAE fine-tune setup: RandAug m9, mixup 0.8,
# cutmix 1.0, label smoothing 0.1, random erasing 0.25, resize 256 + crop 224, global average pool):
# | batch 1024 (8 GPUs x 128) | AdamW (0.9, 0.999), lr 2e-3, wd 0.05 | 100 ep, warmup 20 |
# | layer decay 0.65 | drop path 0.1 |
#
# Weights: `checkpoint` is a LoMaR pre-training checkpoint (keys `backbone.*`). The encoder loads
# entirely; `pos_embed` is all zeros in a LoMaR checkpoint (LoMaR has no absolute position
# embedding), so fine-tuning starts from a zero absolute position embedding and learns it. The
# keys a ViT lacks (`backbone.mask_token`, `backbone.layers.N.attn.relative_position_bias_table`,
# and `backbone.ln1.*` with final_norm=False) are logged as unused by `LoudPretrained`: this ViT
# has no relative position bias (see docs/lomar.md). A load that matches nothing, a shape mismatch
# or a missing encoder weight stops the run (only the new fine-tune norm `ln2` may be missing).
_base_ = ['mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py']
custom_imports = dict(imports=['localmim_mm', 'localmim_mm.runtime.enable'],
                      allow_failed_imports=False)

checkpoint = 'work_dirs/lomar_vit-base-p16_8xb512-coslr-400e_in1k/epoch_400.pth'
epochs, warmup_epochs = 100, 20

# Corrupt or truncated images fail naming the file (docs/guarantees.md): the stock pipelines with
# StrictLoadImageFromFile (same arguments) in place of LoadImageFromFile.
train_pipeline = [dict(_base_.train_pipeline[0], type='StrictLoadImageFromFile'),
                  *_base_.train_pipeline[1:]]
test_pipeline = [dict(_base_.test_pipeline[0], type='StrictLoadImageFromFile'),
                 *_base_.test_pipeline[1:]]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

model = dict(
    backbone=dict(
        type='VisionTransformer', arch='base', img_size=224, patch_size=16, drop_path_rate=0.1,
        out_type='avg_featmap', final_norm=False,
        init_cfg=dict(type='LoudPretrained', checkpoint=checkpoint, prefix='backbone.',
                      allow_missing=['ln2.*'])))

# optimiser (AdamW, lr 2e-3, wd 0.05, layer decay 0.65) and 100 epochs: the MAE recipe's
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=warmup_epochs, end=epochs,
         convert_to_iter_based=True),
]
