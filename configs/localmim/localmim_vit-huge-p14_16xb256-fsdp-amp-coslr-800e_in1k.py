# LocalMIM ViT-H/14 (the release's MIM_vit_huge_patch14: 32 blocks of width 1280, 16 heads, taps
# 1, 3, 29, 31, one 256-wide decoder block with 8 heads per tap), sharded with FSDP. Not in the
# paper: the ViT-L recipe (batch 4096 = 16 GPUs x 256, blr 1.5e-4, 800 epochs, warmup 40, HOG
# nbins 18 with the frozen gradient bias, AMP) on the larger encoder.
# Scales: at 224 px the patch grid is 16x16 and a tap at scale s has cells of 14 / s px. The
# paper's scales 4 / 2 / 1 / 0.5 would need 3.5 px cells (the release keeps HOG pools of
# 4 / 8 / 16 / 32 px, which do not match its own 64x64 / 32x32 / 16x16 / 8x8 predictions); cells
# must be whole pixels that tile the image and scales powers of two, so the finest valid scale is
# 2 (7 px). Taps 1, 3, 29, 31 reconstruct at scales 2 / 2 / 1 / 0.5: HOG cells of 7 / 7 / 14 /
# 28 px (32x32 / 32x32 / 16x16 / 8x8 grids); the two shallow taps share the finest scale.
# FSDP as localmim_vit-large-p16_16xb256-fsdp-amp-coslr-800e_in1k.py; memory per GPU:
# docs/scale_out.md.
_base_ = ['./localmim_vit-large-p16_16xb256-fsdp-amp-coslr-800e_in1k.py']

model = dict(
    backbone=dict(arch='h', patch_size=14, out_indices=[1, 3, 29, 31]),
    neck=dict(in_channels=1280),
    head=dict(in_channels=1280, scales=[2, 2, 1, 0.5]),
    target_generator=dict(cell_sizes=[7, 7, 14, 28]))
