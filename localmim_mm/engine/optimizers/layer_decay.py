"""Layer-wise lr decay for detectors / segmentors built on our ViT and Swin backbones.

mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` asks the *top* module for
``get_layer_depth``, which mmdet / mmseg models do not have, and mmseg's own constructor only
accepts backbones whose class name contains BEiT / MAE / ConvNeXt. The subclass here takes the
depth from ``model.backbone`` instead: the backbone's own ``get_layer_depth`` (mmpretrain
``VisionTransformer``, ``BEiTViT``, ``SwinTransformer``) or, for mmdet / mmseg ``SwinTransformer``
(same parameter names, no such method), the Swin rule below. Every other parameter (neck,
heads) is in the last depth and keeps the base lr.

The class is registered once, in mmengine's root ``OPTIM_WRAPPER_CONSTRUCTORS``: mmpretrain's,
mmdet's and mmseg's registries are its children and find it there, so this module imports neither
mmdet nor mmseg.
"""
from typing import Callable, List, Optional, Tuple

import torch.nn as nn
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor

LayerDepthFn = Callable[[str], Tuple[int, int]]


def swin_layer_depth(stage_depths: List[int], param_name: str, prefix: str) -> Tuple[int, int]:
    """Depth of a Swin parameter: stem 0, block ``j`` of stage ``i`` after the blocks before it,
    a stage's downsample with its last block, anything else (out norms) in the last depth."""
    num_layers = sum(stage_depths) + 2
    if not param_name.startswith(prefix):
        return num_layers - 1, num_layers
    name = param_name[len(prefix):]
    if name.startswith(('patch_embed', 'absolute_pos_embed')):
        return 0, num_layers
    if name.startswith('stages.'):
        parts = name.split('.')
        stage = int(parts[1])
        if parts[2] == 'downsample':
            return sum(stage_depths[:stage + 1]), num_layers
        return sum(stage_depths[:stage]) + int(parts[3]) + 1, num_layers
    return num_layers - 1, num_layers


def backbone_layer_depth(model: nn.Module, prefix: str = 'backbone.') -> LayerDepthFn:
    """``param_name -> (depth, num_depths)`` for a model whose backbone is ``model.backbone``."""
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        raise TypeError(
            f'layer-wise lr decay: {type(model).__name__} has no `backbone` attribute; this '
            'constructor is meant for mmdet detectors / mmseg segmentors. For an mmpretrain '
            'classifier use constructor="LearningRateDecayOptimWrapperConstructor".')
    if hasattr(backbone, 'get_layer_depth'):
        return lambda name: backbone.get_layer_depth(name, prefix=prefix)
    stages = getattr(backbone, 'stages', None)
    if stages is not None and all(hasattr(s, 'blocks') for s in stages):
        depths = [len(s.blocks) for s in stages]
        return lambda name: swin_layer_depth(depths, name, prefix)
    raise TypeError(
        f'layer-wise lr decay: backbone {type(backbone).__name__} has no `get_layer_depth` and is '
        'not Swin-like (`stages[i].blocks`); use mmpretrain.VisionTransformer / BEiTViT / '
        'SwinTransformer (or mmdet / mmseg SwinTransformer), or drop `layer_decay_rate`.')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BackboneLayerDecayOptimWrapperConstructor(LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's layer-decay constructor, with the depth taken from ``model.backbone``.

    ``paramwise_cfg`` as mmpretrain's: ``layer_decay_rate`` (required, in (0, 1]),
    ``bias_decay_mult``, ``norm_decay_mult``, ``flat_decay_mult``, ``custom_keys``.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        rate = (paramwise_cfg or {}).get('layer_decay_rate')
        if rate is None or not 0 < rate <= 1:
            raise ValueError(
                f'{type(self).__name__}: paramwise_cfg.layer_decay_rate={rate!r}; set it to a '
                'value in (0, 1] (e.g. 0.65 for ViT-B), or use the default constructor.')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   get_layer_depth: Optional[LayerDepthFn] = None, **kwargs) -> None:
        if get_layer_depth is None and prefix == '':
            get_layer_depth = backbone_layer_depth(module)
        super().add_params(params, module, prefix=prefix, get_layer_depth=get_layer_depth,
                           **kwargs)
