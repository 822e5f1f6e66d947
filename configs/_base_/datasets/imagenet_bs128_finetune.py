# ImageNet-1k fine-tuning data: mmpretrain's Swin / MAE pipelines (RandomResizedCrop 224, flip,
# RandAugment m9 mstd 0.5, random erasing 0.25; eval resize 256 + center crop 224), 128 images
# per GPU. Corrupt or truncated images fail naming the file (docs/guarantees.md): the stock
# pipelines with StrictLoadImageFromFile (same arguments) in place of LoadImageFromFile.
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py']

train_pipeline = [dict(_base_.train_pipeline[0], type='StrictLoadImageFromFile'),
                  *_base_.train_pipeline[1:]]
test_pipeline = [dict(_base_.test_pipeline[0], type='StrictLoadImageFromFile'),
                 *_base_.test_pipeline[1:]]
train_dataloader = dict(batch_size=128, num_workers=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=128, num_workers=8, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
