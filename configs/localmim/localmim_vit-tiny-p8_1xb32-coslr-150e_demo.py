# The `make demo` recipe (tools/demo.sh): a narrow tiny LocalMIM ViT trained long enough on the
# 300 sample images that its reconstructions leave the mean target (docs/analysis.md, "Watching
# a run learn"). 64 px inputs, patch 8 (8x8 grid), 8 blocks of width 128 (4 heads), taps 1, 3, 5,
# 7 at scales 4 / 2 / 1 / 0.5 (HOG of 2 / 4 / 8 / 16-px cells, nbins 9), decoders 96 wide.
# | batch 32 | blr 1.2e-2 (lr 1.5e-3) | 150 ep (1500 iterations), warmup 8 | min lr 1e-6 |
# While it trains: k-NN top-1 on data/sample_cifar (300 train / 100 val images) every 10 epochs,
# and the reconstructions of 2 validation images every 50 epochs (vis_data/vis_image/*.png).
_base_ = ['./localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py']
blr, epochs, warmup_epochs = 1.2e-2, 150, 8
embed_dims, decoder_dims = 128, 96

model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=embed_dims, num_layers=8, num_heads=4,
                            feedforward_channels=4 * embed_dims)),
    neck=dict(in_channels=embed_dims),
    head=dict(in_channels=embed_dims, embed_dims=decoder_dims))
optim_wrapper = dict(optimizer=dict(lr=blr * 32 / 256))  # batch 32
param_scheduler = [dict(_base_.param_scheduler[0], end=warmup_epochs),
                   dict(_base_.param_scheduler[1], begin=warmup_epochs, end=epochs)]
train_cfg = dict(max_epochs=epochs)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=50, max_keep_ckpts=1))
custom_hooks = [
    dict(type='RepresentationMonitorHook', data_root='data/sample_cifar', interval=10),
    dict(type='LiveReconstructionHook', images=['data/sample_cifar/val/airplane/0000.jpg',
                                                'data/sample_cifar/val/cat/0000.jpg'],
         interval=50, initial=True),
]
