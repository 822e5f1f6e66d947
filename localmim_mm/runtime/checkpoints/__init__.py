"""Checkpoints of a run: loading (weights-only runner checkpoints, checked and converted files),
the checkpoint ``--resume`` continues from, and the run length it was saved for."""
from .loading import enable_checkpoint_loading
from .resume import find_resumable_checkpoint, resolve_auto_resume
from .resume_length import check_resume_length

__all__ = ['check_resume_length', 'enable_checkpoint_loading', 'find_resumable_checkpoint',
           'resolve_auto_resume']
