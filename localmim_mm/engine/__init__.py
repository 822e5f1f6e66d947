from .atomic_checkpoint_hook import AtomicCheckpointHook
from .deterministic_pipeline_hook import DeterministicPipelineHook
from .live_reconstruction_hook import LiveReconstructionHook
from .mid_epoch_resume_hook import MidEpochResumeHook
from .non_finite_loss_hook import NonFiniteLossHook
from .representation_monitor_hook import RepresentationMonitorHook
from .rng_state_hook import RNGStateHook
from .training_state_guard import guard_training_state

__all__ = [
    'AtomicCheckpointHook', 'DeterministicPipelineHook', 'LiveReconstructionHook',
    'MidEpochResumeHook',
    'NonFiniteLossHook', 'RepresentationMonitorHook', 'RNGStateHook', 'guard_training_state'
]
