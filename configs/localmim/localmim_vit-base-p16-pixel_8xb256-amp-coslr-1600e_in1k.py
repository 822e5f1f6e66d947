# LocalMIM ViT-B/16 with normalized-pixel targets (not in the authors' release; offered here):
# each scale regresses the pixels of its 4 / 8 / 16 / 32 px cells, normalized per cell.
_base_ = ['./localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py']
model = dict(
    head=dict(target_channels=[3 * 4 * 4, 3 * 8 * 8, 3 * 16 * 16, 3 * 32 * 32]),
    target_generator=dict(_delete_=True, type='MultiScalePixelGenerator',
                          cell_sizes=[4, 8, 16, 32], norm_pix=True))
