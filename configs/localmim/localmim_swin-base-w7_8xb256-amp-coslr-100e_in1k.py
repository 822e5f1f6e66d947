# LocalMIM Swin-B (window 7), HOG nbins 18 + bias, 100 epochs (paper: 83.8 top-1 after fine-tuning).
# | batch 2048 (8 GPUs x 256) | blr 1e-4 (lr 8e-4) | 100 ep, warmup 10 | min lr 0 | AMP |
_base_ = ['./localmim_swin-base-w7_8xb256-amp-coslr-400e_in1k.py']
epochs, warmup_epochs = 100, 10

param_scheduler = [dict(_base_.param_scheduler[0], end=warmup_epochs),
                   dict(_base_.param_scheduler[1], begin=warmup_epochs, end=epochs)]
train_cfg = dict(max_epochs=epochs)
