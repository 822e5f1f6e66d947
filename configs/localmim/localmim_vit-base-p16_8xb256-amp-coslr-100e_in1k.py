# LocalMIM ViT-B/16, HOG nbins 9, 100 epochs (paper: 83.3 top-1 after fine-tuning, 70 GPU-hours).
# | batch 2048 | blr 2e-4 (lr 1.6e-3) | 100 ep, warmup 10 | min lr 1e-6 | AMP |
_base_ = ['./localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py']
epochs, warmup_epochs = 100, 10

param_scheduler = [dict(_base_.param_scheduler[0], end=warmup_epochs),
                   dict(_base_.param_scheduler[1], begin=warmup_epochs, end=epochs)]
train_cfg = dict(max_epochs=epochs)
