"""Checkpoints of a run: loading (weights-only runner checkpoints, checked and converted files)
and the checkpoint ``--resume`` continues from. ``resume_length`` (the run length a resume may
keep) is imported from its module: it needs ``runtime.launch``, which needs this package."""
from .loading import enable_checkpoint_loading
from .resume import find_resumable_checkpoint, resolve_auto_resume

__all__ = ['enable_checkpoint_loading', 'find_resumable_checkpoint', 'resolve_auto_resume']
