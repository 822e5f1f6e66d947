"""The backbone layer-decay constructor, under mmseg's ``OPTIM_WRAPPER_CONSTRUCTORS``."""
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS

from localmim_mm.layer_decay import BackboneLayerDecayOptimWrapperConstructor

OPTIM_WRAPPER_CONSTRUCTORS.register_module(module=BackboneLayerDecayOptimWrapperConstructor)
