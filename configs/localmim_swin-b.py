# Entry point: LocalMIM Swin-B (window 7), the paper's main Swin recipe (400 epochs, 8 GPUs x 256,
# HOG nbins 18 + bias, per-sample masks).
#   tools/dist_train.sh configs/localmim_swin-b.py 8
_base_ = ['./localmim/localmim_swin-base-w7_8xb256-amp-coslr-400e_in1k.py']
