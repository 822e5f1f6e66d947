# LocalMIM ViT-B/16, HOG nbins 9, 1600 epochs (paper: 84.0 top-1 after fine-tuning).
# | batch 2048 (8 GPUs x 256) | blr 2e-4 (lr 1.6e-3) | 1600 ep, warmup 40 | min lr 1e-6 | AMP |
# Model, data (256 per GPU) and schedule are the bases' as they stand.
_base_ = [
    '../_base_/models/localmim_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs256_localmim.py',
    '../_base_/schedules/localmim_adamw_coslr.py',
    '../_base_/default_runtime.py',
]
gpus = 8  # 8 GPUs x 256 = batch 2048 (the per-GPU memory estimate reads `gpus`)
