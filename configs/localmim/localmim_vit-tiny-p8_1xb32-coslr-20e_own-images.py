# Tiny LocalMIM ViT (64 px, patch 8, 8 blocks, HOG at 2/4/8/16-px cells) on YOUR OWN unlabeled
# images, for a CPU try-out of a folder before a GPU run with the ViT-B config
# (localmim_vit-base-p16_8xb256-amp-coslr-100e_own-images.py; docs/own_images.md).
# | batch 32 | blr 1.5e-3 | 20 ep, warmup 2 | min lr 1e-6 | float32 | 64 px |
# The only edit: where the images are (or --cfg-options train_dataloader.dataset.data_root=DIR).
# Every image under data_root at any depth; any mode becomes 8-bit RGB; corrupt files are
# skipped, each named in a warning and counted.
_base_ = ['./localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py']
data_root = 'data/own_images/'

# the recipe's pipeline, skipping (and naming) corrupt files instead of stopping
train_pipeline = [dict(_base_.train_pipeline[0], skip_corrupt=True), *_base_.train_pipeline[1:]]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='UnlabeledImageFolder', data_root=data_root,
                 pipeline=train_pipeline))
