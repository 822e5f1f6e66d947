# Entry point: LocalMIM ViT-B/16, the paper's main recipe (1600 epochs, 8 GPUs x 256, HOG).
#   tools/dist_train.sh configs/localmim_vit-b.py 8
_base_ = ['./localmim/localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py']
