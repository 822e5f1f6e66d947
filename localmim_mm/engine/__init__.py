"""The LocalMIM training aids, shaped like ``mmpretrain.engine``: hooks that show what the model
learns while it pre-trains, and the layer-decay optimizer constructor for transfer."""
from .hooks import (LiveReconstructionHook, PeriodicCheckHook, RepresentationMonitorHook,
                    guard_training_state)
from .optimizers import BackboneLayerDecayOptimWrapperConstructor

__all__ = ['BackboneLayerDecayOptimWrapperConstructor', 'LiveReconstructionHook',
           'PeriodicCheckHook', 'RepresentationMonitorHook', 'guard_training_state']
