# LoMaR ViT-B/16 (spec section 6): 4 windows of 7x7 patches per image, offsets drawn per image,
# 80% of each window masked (39 of 49) and replaced by mask tokens, each window its own sequence
# (cls + 49), relative position bias per layer and head (no absolute position embedding), a linear
# head predicting per-patch normalized pixels, MSE on masked patches.
# The throughput benchmark builds the 448-px variant with backbone.img_size=448 (still 4 windows of
# 7x7, drawn from the 28x28 grid).
model = dict(
    type='LoMaR',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(type='LoMaRViT', arch='b', img_size=224, patch_size=16, num_windows=4,
                  window_size=7, mask_ratio=0.8, window_sampling='per_image'),
    head=dict(type='LoMaRHead', embed_dims=768, patch_size=16, norm_pix=True,
              loss=dict(type='PixelReconstructionLoss', criterion='L2')))
