"""What ``tools/train.py`` / ``tools/test.py`` do around the Runner: build the runner the config
asks for, and keep a run from outliving its launcher, sharing its work dir, or resuming from a
truncated checkpoint."""
import os

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .checkpoint_file import CorruptCheckpointError, check_checkpoint_file
from .process import die_with_parent
from .resume import resolve_auto_resume
from .work_dir_lock import WorkDirBusyError, lock_work_dir

__all__ = ['build_runner', 'guard_worker', 'guard_training_run', 'launcher_rank']

RANK_VARIABLES = ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK')


def build_runner(cfg: Config):
    """``Runner.from_cfg``, or ``RUNNERS.build`` when the config sets ``runner_type`` (e.g.
    ``FlexibleRunner`` with an FSDP / DeepSpeed ``strategy``), as mmpretrain's train.py does.
    ``cfg.compile`` is applied by either runner."""
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def launcher_rank() -> int:
    """This process's global rank from the launcher's environment (before any process group)."""
    for name in RANK_VARIABLES:
        if os.environ.get(name, '').isdigit():
            return int(os.environ[name])
    return 0


def guard_worker(launcher: str, launcher_pid: int) -> None:
    """A worker of ``torch.distributed.run`` dies with it (it runs in its own session, so a kill
    of the launcher's process group does not reach it)."""
    if launcher == 'pytorch':
        die_with_parent(launcher_pid)


def guard_training_run(cfg: Config, launcher: str, launcher_pid: int, auto_resume: bool) -> None:
    """Before building the Runner: die with the launcher, hold the work dir (rank 0), pick the
    checkpoint ``--resume`` continues from, and refuse a truncated ``load_from``."""
    guard_worker(launcher, launcher_pid)
    rank0 = launcher_rank() == 0
    if rank0:
        try:
            lock_work_dir(cfg.work_dir)
        except WorkDirBusyError as err:
            raise SystemExit(str(err)) from None
    if auto_resume:
        resolve_auto_resume(cfg, announce=rank0)
    elif cfg.get('load_from'):
        check_load_from(cfg.load_from)


def check_load_from(path: str) -> None:
    if '://' in path or os.path.isdir(path):  # remote, or FSDP's per-rank folder
        return
    try:
        check_checkpoint_file(path)
    except (CorruptCheckpointError, FileNotFoundError) as err:
        raise SystemExit(f'load_from / --resume: {err}') from None
