# The classifier of the fine-tune recipes (the release's, after BEiT / MAE): a new linear head
# (trunc-normal init, std 2e-5) trained with label smoothing 0.1 on mixup 0.8 / cutmix 1.0
# batches. Recipes add the backbone (loaded from a LocalMIM checkpoint), the neck and the head's
# input width.
model = dict(
    type='ImageClassifier',
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))
