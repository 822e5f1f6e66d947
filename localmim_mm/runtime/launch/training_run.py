"""What ``tools/train.py`` / ``tools/test.py`` do around the Runner: build the runner the config
asks for, and keep a run from outliving its launcher, sharing its work dir, or resuming from a
truncated checkpoint."""
import os
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ...transfer.checkpoint_file import CorruptCheckpointError, check_checkpoint_file
from ..checkpoints.resume import resolve_auto_resume
from ..compat import require_tested_mmengine
from ..model_wrappers import unwrap_model
from .process import die_with_parent, forked_children_die_with_this_process
from .work_dir_lock import WorkDirBusyError, lock_work_dir

__all__ = ['build_runner', 'guard_worker', 'guard_training_run', 'launcher_rank']

RANK_VARIABLES = ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK')


def build_runner(cfg: Config):
    """``Runner.from_cfg``, or ``RUNNERS.build`` when the config sets ``runner_type`` (e.g.
    ``FlexibleRunner`` with an FSDP / DeepSpeed ``strategy``), as mmpretrain's train.py does;
    ``cfg.compile`` (True or ``torch.compile`` options) compiles the model's forward.

    mmengine's Runner (``compat.TESTED_MMENGINE``) compiles ``train_step``, which includes the
    optimizer step that dynamo fails to trace (torch 2.13: ``'UserDefinedDictVariable' object has no
    attribute 'items'`` in AdamW), and ``FlexibleRunner.from_cfg`` drops ``compile``. Both therefore
    get the forward compiled instead (the dumped config keeps ``compile``).
    """
    options = _compile_options(cfg.get('compile'))
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
        runner.cfg.pop('compile', None)  # read again by Runner.train(): we compile instead
        if options is not None:
            compile_forward(runner, options)
        return runner
    runner = RUNNERS.build(cfg)
    if options is not None:
        # mmengine private: FlexibleRunner keeps its compile setting only in `_compile`.
        require_tested_mmengine('compiling the forward of a FlexibleRunner (runner._compile)')
        runner._compile = dict(options, target='forward')
    return runner


def _compile_options(setting) -> Optional[dict]:
    if setting is None or setting is False:
        return None
    if setting is True:
        return {}
    if not isinstance(setting, dict):
        raise SystemExit(f'compile={setting!r}: give True or a dict of torch.compile options '
                         "(e.g. dict(backend='inductor', mode='max-autotune'))")
    return {k: v for k, v in setting.items() if k != 'target'}


def compile_forward(runner, options: dict) -> None:
    """``torch.compile`` the forward of the (unwrapped) model; DDP then calls the compiled
    forward, and the backward and optimizer step stay eager."""
    model = unwrap_model(runner.model)
    model.forward = torch.compile(model.forward, **options)
    runner.logger.info(f'Model has been "compiled" (forward, torch.compile options {options}); '
                       'the first iterations are slow while it compiles')


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
    checkpoint ``--resume`` continues from, and refuse a truncated ``load_from``; the
    dataloader workers it forks die with it."""
    guard_worker(launcher, launcher_pid)
    forked_children_die_with_this_process()
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
