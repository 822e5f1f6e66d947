"""The channel LayerNorm of ViTDet's simple pyramid, under mmdet's registry.

mmpretrain's ``LayerNorm2d`` (a LayerNorm over the channels of a (B, C, H, W) map) is exactly it;
registering it in mmdet's ``MODELS`` lets ``norm_cfg=dict(type='LN2d')`` resolve under
``default_scope='mmdet'``.
"""
from mmdet.registry import MODELS
from mmpretrain.models.utils import LayerNorm2d

MODELS.register_module('LN2d', module=LayerNorm2d)

__all__ = ['LayerNorm2d']
