# LocalMIM ViT-B/16 (spec section 2): taps at blocks 1, 3, 9, 11, scales 4 / 2 / 1 / 0.5 of the
# 14x14 patch grid (cells of 4 / 8 / 16 / 32 px), one 256-wide decoder block per tap, HOG nbins 9.
model = dict(
    type='LocalMIM',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(type='LocalMIMViT', arch='b', patch_size=16, mask_ratio=0.75,
                  out_indices=[1, 3, 9, 11], isolate_grad=False),
    neck=dict(type='MultiLayerNeck', in_channels=768, num_layers=4),
    head=dict(type='LocalMIMHead', in_channels=768, target_channels=27,
              scales=[4, 2, 1, 0.5], embed_dims=256, num_heads=8, depth=1, mlp_ratio=4.),
    target_generator=dict(type='MultiScaleHOGGenerator', nbins=9, cell_sizes=[4, 8, 16, 32]))
