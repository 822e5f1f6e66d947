"""The reliability hooks: atomic checkpoints, random streams and batches that ``--resume``
continues exactly, NaN / inf losses stopped before they are saved, the run length in every
checkpoint, the evaluated split in the log."""
from .atomic_checkpoint_hook import AtomicCheckpointHook, checkpoint_due, checkpoint_follows_iter
from .deterministic_pipeline_hook import DeterministicPipelineHook
from .evaluated_split_hook import EvaluatedSplitHook
from .mid_epoch_resume_hook import MidEpochResumeHook
from .non_finite_loss_hook import NonFiniteLossHook
from .rng_state_hook import RNGStateHook
from .run_length_check import RunLengthCheck

__all__ = ['AtomicCheckpointHook', 'DeterministicPipelineHook', 'EvaluatedSplitHook',
           'MidEpochResumeHook', 'NonFiniteLossHook', 'RNGStateHook', 'RunLengthCheck',
           'checkpoint_due', 'checkpoint_follows_iter']
