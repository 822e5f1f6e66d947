# LocalMIM Swin-B (window 7) with normalized-pixel targets, 100 epochs (paper: 83.7 top-1): each
# stage regresses the pixels of its 8 / 16 / 32 / 32 px cells, normalized per cell (norm_pix).
# | batch 2048 (8 GPUs x 256) | blr 1e-4 (lr 8e-4) | 100 ep, warmup 10 | min lr 0 | AMP |
_base_ = ['./localmim_swin-base-w7_8xb256-amp-coslr-100e_in1k.py']
model = dict(
    head=dict(target_channels=[3 * 8 * 8, 3 * 16 * 16, 3 * 32 * 32, 3 * 32 * 32]),
    target_generator=dict(_delete_=True, type='MultiScalePixelGenerator',
                          cell_sizes=[8, 16, 32, 32], norm_pix=True))
