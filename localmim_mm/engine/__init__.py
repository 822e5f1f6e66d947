from .atomic_checkpoint_hook import AtomicCheckpointHook
from .deterministic_pipeline_hook import DeterministicPipelineHook
from .mid_epoch_resume_hook import MidEpochResumeHook
from .non_finite_loss_hook import NonFiniteLossHook
from .rng_state_hook import RNGStateHook

__all__ = [
    'AtomicCheckpointHook', 'DeterministicPipelineHook', 'MidEpochResumeHook',
    'NonFiniteLossHook', 'RNGStateHook'
]
