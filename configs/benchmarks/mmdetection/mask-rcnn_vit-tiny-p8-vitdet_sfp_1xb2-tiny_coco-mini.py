# CPU smoke recipe of the ViTDet backbone: the tiny Mask R-CNN of
# mask-rcnn_vit-tiny-p8_sfp_1xb2-tiny_coco-mini.py (COCO subset at <= 256 px, 2 epochs, fp32) with
# the tiny LocalMIM ViT (patch 8, 8 blocks of width 192, pre-trained at 64 px) as a ViTDet:
# 8 x 8 windows (the pre-training grid), global attention in blocks 3 and 7, decomposed relative
# position tables sized for a 256-px input. Same data paths and overrides as the base config:
#   python tools/train.py \
#       configs/benchmarks/mmdetection/mask-rcnn_vit-tiny-p8-vitdet_sfp_1xb2-tiny_coco-mini.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/tiny/epoch_20.pth \
#       train_dataloader.dataset.data_root=/tmp/coco_mini/ \
#       val_dataloader.dataset.data_root=/tmp/coco_mini/ \
#       val_evaluator.ann_file=/tmp/coco_mini/annotations/instances_val2017.json
_base_ = ['./mask-rcnn_vit-tiny-p8_sfp_1xb2-tiny_coco-mini.py']

checkpoint = 'work_dirs/localmim_vit-tiny-p8_1xb32-coslr-20e_sample/epoch_20.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ViTDet',
        arch=dict(embed_dims=192, num_layers=8, num_heads=3, feedforward_channels=768),
        img_size=64,
        patch_size=8,
        input_size=256,
        window_size=8,
        global_attn_indexes=(3, 7),
        drop_path_rate=0.0,
        out_indices=(7, ),
        init_cfg=dict(type='LoudPretrained', checkpoint=checkpoint, prefix='backbone.',
                      allow_missing=['layers.*.attn.rel_pos_?'])))
