# LocalMIM ViT-B/16 pre-training on YOUR OWN unlabeled images (docs/own_images.md): the 100-epoch
# ImageNet recipe (HOG nbins 9, taps 1/3/9/11) on every image under `data_root`, at any depth.
# | batch 2048 | blr 2e-4 (lr 1.6e-3) | 100 ep, warmup 10 | min lr 1e-6 | AMP | 224 px |
# The only edit: where the images are (or --cfg-options train_dataloader.dataset.data_root=DIR).
#   tools/dist_train.sh THIS_CONFIG 8 --cfg-options train_dataloader.dataset.data_root=/data/mine
# Formats: jpg, png, bmp, ppm/pgm/pbm, tif, webp, gif; grayscale, RGBA, palette, CMYK and 16-bit
# images become 8-bit RGB; corrupt files are skipped, each named in a warning and counted.
# Fewer images than ImageNet's 1.28 M: keep the iterations, not the epochs (tools/train.py
# --epochs N rescales the schedule); a small batch: --auto-scale-lr.
_base_ = ['./localmim_vit-base-p16_8xb256-amp-coslr-100e_in1k.py']
data_root = 'data/own_images/'

# the recipe's pipeline, skipping (and naming) corrupt files instead of stopping
train_pipeline = [dict(_base_.train_pipeline[0], skip_corrupt=True), *_base_.train_pipeline[1:]]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='UnlabeledImageFolder', data_root=data_root,
                 pipeline=train_pipeline))
