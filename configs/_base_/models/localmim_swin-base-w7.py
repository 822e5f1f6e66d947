# LocalMIM Swin-B, window 7, 224 px (spec section 3): visible-token encoder (group window
# attention), 32-px mask cells, 75% masked (37 of 49), one mask per sample (mask_shared=False);
# taps after the PatchMerging of stages 1-3 and the raw stage 4 (28x28x256, 14x14x512, 7x7x1024,
# 7x7x1024), each with its own LayerNorm; decoders 64 / 128 / 128 / 128 wide, 1 block, 4 heads,
# no rescale; HOG nbins 18 with the frozen gradient bias, pooled over 8 / 16 / 32 / 32 px (54 ch).
model = dict(
    type='LocalMIM',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(type='LocalMIMSwin', arch='base', img_size=224, window_size=7,
                  out_indices=[0, 1, 2, 3], mask_ratio=0.75, mask_unit=32, mask_shared=False,
                  encoder_mode='visible', drop_path_rate=0.),
    neck=dict(type='MultiLayerNeck', in_channels=[256, 512, 1024, 1024], num_layers=4),
    head=dict(type='LocalMIMHead', in_channels=[256, 512, 1024, 1024], target_channels=54,
              scales=[1, 1, 1, 1], rescale=False, token_ratios=[4, 2, 1, 1],
              with_cls_token=False, embed_dims=[64, 128, 128, 128], num_heads=4, depth=1,
              mlp_ratio=4.),
    target_generator=dict(type='MultiScaleHOGGenerator', nbins=18, cell_sizes=[8, 16, 32, 32],
                          hog_bias=True))
