# LocalMIM Swin-L, window 14, HOG nbins 18 + bias, 800 epochs (paper: 85.6 top-1 after fine-tuning).
# | batch 4096 (16 GPUs x 256) | blr 1e-4 (lr 1.6e-3) | 800 ep, warmup 40 | min lr 0 | AMP |
# At 224 px the stage maps are 56 / 28 / 14 / 7: window 14 in stages 1-3 (no shift in stage 3,
# whose map equals the window) and window 7 (the whole map, as the original Swin shrinks it) in
# stage 4. Fine-tune with the same per-stage windows, or drop stage 4's relative_position_index.
_base_ = ['./localmim_swin-base-w7_8xb256-amp-coslr-400e_in1k.py']
gpus, blr, epochs = 16, 1e-4, 800
total_batch = gpus * 256

model = dict(
    backbone=dict(
        arch='large', window_size=14,
        stage_cfgs=[dict(), dict(), dict(), dict(window_size=7)]),
    neck=dict(in_channels=[384, 768, 1536, 1536]),
    head=dict(in_channels=[384, 768, 1536, 1536]))
optim_wrapper = dict(optimizer=dict(lr=blr * total_batch / 256))
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=epochs)]
train_cfg = dict(max_epochs=epochs)
auto_scale_lr = dict(base_batch_size=total_batch)
