"""The backbone layer-decay constructor, under mmdet's ``OPTIM_WRAPPER_CONSTRUCTORS``."""
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS

from localmim_mm.layer_decay import BackboneLayerDecayOptimWrapperConstructor

OPTIM_WRAPPER_CONSTRUCTORS.register_module(module=BackboneLayerDecayOptimWrapperConstructor)
