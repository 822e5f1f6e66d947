# The 300 CIFAR-10 training images shipped in data/sample_cifar (demo and tests), upsampled to 64:
# the ImageNet pre-training data (same normalisation and augmentation) on another folder and size.
_base_ = ['./imagenet_bs256_localmim.py']
dataset_type = 'CustomDataset'
data_root = 'data/sample_cifar/'
img_size = 64

train_pipeline = [_base_.train_pipeline[0], dict(_base_.train_pipeline[1], scale=img_size),
                  *_base_.train_pipeline[2:]]
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root, data_prefix='train',
                 with_label=False, pipeline=train_pipeline))
