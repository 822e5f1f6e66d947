"""Starting a run: launcher and AMP settings, the process group on CPU, the work-dir lock,
processes that die with their launcher, the Runner (compiled forward), FSDP units."""
from .fsdp_wrap import fsdp_unit_types, vit_block_wrap_policy
from .launcher import prepare_launch
from .training_run import build_runner, guard_training_run, guard_worker, launcher_rank

__all__ = ['build_runner', 'fsdp_unit_types', 'guard_training_run', 'guard_worker',
           'launcher_rank', 'prepare_launch', 'vit_block_wrap_policy']
