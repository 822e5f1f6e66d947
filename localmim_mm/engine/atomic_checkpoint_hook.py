"""Checkpoints written so that an interrupted write never costs the previous good one."""
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmpretrain.registry import HOOKS

__all__ = ['AtomicCheckpointHook', 'atomic_write_text']


def _fsync(path: str) -> None:
    with open(path, 'rb+') as f:
        os.fsync(f.fileno())


def atomic_write_text(path: str, text: str) -> None:
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose writes are atomic and whose clean-up waits for the new file.

    mmengine 0.10.7 writes ``iter_N.pth`` and the ``last_checkpoint`` pointer in place and removes
    the oldest kept checkpoint *before* writing the new one, so a kill during the write can
    leave a truncated newest file, a pointer to it, and (with ``max_keep_ckpts=1``) no good
    checkpoint at all. Here, on a local ``out_dir``:

    1. the checkpoint is written to ``<name>.tmp``, flushed to disk, then renamed over
       ``<name>`` (``os.replace`` is atomic on POSIX);
    2. then the ``last_checkpoint`` pointer is replaced the same way;
    3. only then are checkpoints beyond ``max_keep_ckpts`` removed.

    A kill at any point leaves every ``*.pth`` complete and the pointer on a complete file (at
    worst a stale ``*.tmp``, removed at the next start). Remote back ends (``backend_args``) are
    written as by ``CheckpointHook``.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self._is_local() and is_main_process() and osp.isdir(self.out_dir):
            for name in os.listdir(self.out_dir):
                if name.endswith('.pth.tmp'):
                    os.remove(osp.join(self.out_dir, name))

    def _is_local(self) -> bool:
        return (not self.backend_args and self.file_client_args is None
                and '://' not in str(self.out_dir))

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
        _fsync(f'{self.last_ckpt}.tmp')
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
