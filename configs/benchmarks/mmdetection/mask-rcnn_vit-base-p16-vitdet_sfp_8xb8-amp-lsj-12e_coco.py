# Mask R-CNN ViTDet-B from LocalMIM, the 100-epoch ViTDet recipe cut to 12 epochs (22125 iterations
# of 64 images; lr x0.1 at the same fractions, 88 % and 96 %): a shorter check of a checkpoint.
# Everything else (backbone, LSJ 1024, AdamW 1e-4, wd 0.1, layer decay 0.7, AMP) as the 100e config.
#   tools/dist_train.sh \
#     configs/benchmarks/mmdetection/mask-rcnn_vit-base-p16-vitdet_sfp_8xb8-amp-lsj-12e_coco.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/localmim_vit-base.pth
_base_ = ['./mask-rcnn_vit-base-p16-vitdet_sfp_8xb8-amp-lsj-100e_coco.py']

max_iters, interval = 22125, 5000  # 22125 x 64 images = 12 epochs of COCO train2017
train_cfg = dict(max_iters=max_iters, val_interval=interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
         milestones=[19470, 21240], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=interval))
