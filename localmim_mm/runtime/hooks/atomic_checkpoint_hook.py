"""Checkpoints written so that an interrupted write never costs the previous good one, and the
checkpoint hook's save rule, which the hooks that prepare a checkpoint ask."""
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

from ...transfer.checkpoint_file import atomic_write_text, fsync_file
from ..compat import require_tested_mmengine

__all__ = ['AtomicCheckpointHook', 'checkpoint_due', 'checkpoint_follows_iter']


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose writes are atomic and whose clean-up waits for the new file.

    mmengine (``compat.TESTED_MMENGINE``) writes ``iter_N.pth`` and the ``last_checkpoint``
    pointer in place and removes the oldest kept checkpoint *before* writing the new one, so a
    kill during the write can leave a truncated newest file, a pointer to it, and (with
    ``max_keep_ckpts=1``) no good checkpoint at all. Here, on a local ``out_dir``:

    1. the checkpoint is written to ``<name>.tmp``, flushed to disk, then renamed over
       ``<name>`` (``os.replace`` is atomic on POSIX);
    2. then the ``last_checkpoint`` pointer is replaced the same way;
    3. only then are checkpoints beyond ``max_keep_ckpts`` removed.

    A kill at any point leaves every ``*.pth`` complete and the pointer on a complete file (at
    worst a stale ``*.tmp``, removed at the next start). Remote back ends (``backend_args``) are
    written as by ``CheckpointHook``.
    """

    def __init__(self, *args, **kwargs) -> None:
        require_tested_mmengine('AtomicCheckpointHook (it overrides the private '
                                'CheckpointHook._save_checkpoint_with_step and its bookkeeping)')
        super().__init__(*args, **kwargs)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self._is_local() and is_main_process() and osp.isdir(self.out_dir):
            for name in os.listdir(self.out_dir):
                if name.endswith('.pth.tmp'):
                    os.remove(osp.join(self.out_dir, name))

    def _is_local(self) -> bool:
        return (not self.backend_args and self.file_client_args is None
                and '://' not in str(self.out_dir))

    # mmengine private: the one method that writes a checkpoint and prunes the old ones.
    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if not self._is_local():
            return super()._save_checkpoint_with_step(runner, step, meta)
        stale = self._update_kept(runner, step)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, f'{filename}.tmp', save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
            **self.args)
        if not is_main_process():
            return
        fsync_file(f'{self.last_ckpt}.tmp')
        os.replace(f'{self.last_ckpt}.tmp', self.last_ckpt)
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for old in stale:
            path = osp.join(self.out_dir, self.filename_tmpl.format(old))
            if osp.isfile(path):
                os.remove(path)

    def _update_kept(self, runner, step) -> list:
        """Record ``step`` among the kept checkpoints (saved inside the checkpoint, as mmengine
        does) and return the steps whose files go once the new file is in place."""
        if self.max_keep_ckpts <= 0:
            return []
        stale = []
        if not self.keep_ckpt_ids or self.keep_ckpt_ids[-1] != step:
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale.append(self.keep_ckpt_ids[0])  # the deque's maxlen drops it on append
            self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        return stale


# The save rule. Whether the runner's checkpoint hook writes a checkpoint at this point of training.
#
# Hooks that need a collective only for what goes into a checkpoint (``RNGStateHook``) or only
# before a checkpoint may be written (``NonFiniteLossHook``) ask this at the same hook stage,
# ahead of the checkpoint hook (which has priority ``VERY_LOW``), and do their collective work only
# when the answer is yes. The answer is the checkpoint hook's own rule (mmengine
# ``compat.TESTED_MMENGINE``), evaluated with its own settings, so it is the same on every rank:
#
# * ``after_train_iter``: by-iteration saving, every ``interval`` iterations counted from
#   ``save_begin``, and the last iteration when ``save_last``;
# * ``after_train_epoch``: by-epoch saving, every ``interval`` epochs counted from ``save_begin``,
#   and the last epoch when ``save_last``; the epoch's last ``after_train_iter`` has run by then;
# * ``after_val_epoch``: ``save_best`` may write the best checkpoint after any validation.
#
# Without a ``CheckpointHook`` (or subclass such as ``AtomicCheckpointHook``) the answer is no.
# ``checkpoint_follows_iter`` asks, after an iteration, whether a checkpoint is saved before the
# next one (at this iteration, or at the end of the epoch this iteration closes).
STAGES = ('after_train_iter', 'after_train_epoch', 'after_val_epoch')


def checkpoint_due(runner, stage: str) -> bool:
    """True when a checkpoint hook of ``runner`` may save at hook stage ``stage`` now."""
    if stage not in STAGES:
        raise ValueError(f'checkpoint_due: stage {stage!r} is not one of {STAGES}')
    return any(_saves_at(hook, runner, stage) for hook in runner.hooks
               if isinstance(hook, CheckpointHook))


def _saves_at(hook: CheckpointHook, runner, stage: str) -> bool:
    """mmengine's ``CheckpointHook`` save rule, read from ``hook``'s own settings."""
    if stage == 'after_val_epoch':
        return bool(hook.save_best)
    if hook.by_epoch != (stage == 'after_train_epoch'):
        return False
    if hook.by_epoch:
        return (hook.every_n_epochs(runner, hook.interval, hook.save_begin)
                or (hook.save_last and hook.is_last_train_epoch(runner)))
    return (hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
            or (hook.save_last and hook.is_last_train_iter(runner)))


def checkpoint_follows_iter(runner, batch_idx: int) -> bool:
    """True, in ``after_train_iter``, when a checkpoint is saved before the next iteration: at
    this iteration (by-iteration saving) or at the end of the epoch it closes (by-epoch)."""
    return checkpoint_due(runner, 'after_train_iter') or (
        _closes_epoch(runner, batch_idx) and checkpoint_due(runner, 'after_train_epoch'))


def _closes_epoch(runner, batch_idx: int) -> bool:
    loop = runner.train_loop
    if isinstance(loop, EpochBasedTrainLoop):  # the resumed epoch's dataloader may be shorter
        return batch_idx + 1 == len(loop.dataloader)
    return runner.iter + 1 == runner.max_iters  # IterBasedTrainLoop: one epoch at the end
