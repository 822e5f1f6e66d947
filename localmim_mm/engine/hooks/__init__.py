from .live_reconstruction_hook import LiveReconstructionHook
from .periodic_check_hook import PeriodicCheckHook
from .representation_monitor_hook import RepresentationMonitorHook
from .training_state_guard import guard_training_state

__all__ = ['LiveReconstructionHook', 'PeriodicCheckHook', 'RepresentationMonitorHook',
           'guard_training_state']
