"""Probes of the chaos campaign (``tools.benchmarks.chaos_resume``), imported only by its runs.

The campaign adds this module to a recipe's ``custom_imports`` (it is never imported by
``localmim_mm``). It gives the harness what a random kill needs and nothing that changes the
numbers a run computes:

* ``ChaosProbeHook`` writes one line per phase change to
  ``<work_dir>/chaos/attempt<A>_rank<R>.log`` (``A`` from ``CHAOS_ATTEMPT``): ``start`` /
  ``restore`` (``before_run`` of a fresh / resumed run), ``loaded N`` (the resumed checkpoint's
  iteration), ``step N`` (iteration N's train step begins), ``ckpt_write N`` / ``ckpt_written N``
  (the checkpoint file of iteration N is being written), ``done N`` (every hook of iteration N
  has run: the next batch is loading). It also widens two windows so that a kill can land in
  them: the checkpoint file is written in ``CKPT_CHUNKS`` pieces over ``ckpt_write_s`` seconds (a
  slow disk), and a resume waits ``restore_s`` seconds after loading its checkpoint.
* ``ChaosLossHook`` appends every iteration's loss terms at full precision to
  ``<work_dir>/chaos/losses_attempt<A>_rank<R>.jsonl`` before the checkpoint hook runs.
* ``ChaosSlowLoad`` (a pipeline transform) sleeps ``seconds`` per sample, so that the training
  process waits on its dataloader workers for part of each iteration.
"""
import json
import os
import os.path as osp
import time

from mmengine.dist import get_rank
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS, TRANSFORMS

CKPT_CHUNKS = 8


def _chaos_file(runner, name: str) -> str:
    folder = osp.join(runner.work_dir, 'chaos')
    os.makedirs(folder, exist_ok=True)
    return osp.join(folder, name.format(attempt=os.environ.get('CHAOS_ATTEMPT', '0'),
                                        rank=get_rank()))


def _append(path: str, line: str) -> None:
    with open(path, 'a') as f:
        f.write(line + '\n')


def _checkpoint_iter(filepath) -> int:
    """``.../iter_12.pth.tmp`` -> 12; -1 for a name without a step."""
    stem = osp.basename(str(filepath)).split('.')[0]
    digits = stem.rsplit('_', 1)[-1]
    return int(digits) if digits.isdigit() else -1


@HOOKS.register_module()
class ChaosProbeHook(Hook):
    priority = 'LOWEST'  # 'step N' after every other before_train_iter; 'done N' after saving

    def __init__(self, ckpt_write_s: float = 1.0, restore_s: float = 1.0) -> None:
        self.ckpt_write_s = ckpt_write_s
        self.restore_s = restore_s
        self._log = None

    def mark(self, phase: str, step=None) -> None:
        fields = [f'{time.time():.4f}', phase, str(-1 if step is None else step), str(os.getpid())]
        _append(self._log, ' '.join(fields))

    def before_run(self, runner) -> None:
        self._log = _chaos_file(runner, 'attempt{attempt}_rank{rank}.log')
        self._slow_checkpoint_writes()
        self.mark('restore' if runner.cfg.get('resume') else 'start')

    def after_load_checkpoint(self, runner, checkpoint) -> None:
        self.mark('loaded', checkpoint['meta']['iter'])
        time.sleep(self.restore_s)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.mark('step', runner.iter + 1)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.mark('done', runner.iter + 1)

    def _slow_checkpoint_writes(self) -> None:
        """Write ``*.pth`` / ``*.pth.tmp`` files in pieces over ``ckpt_write_s`` seconds (the
        process writes checkpoints through mmengine's ``LocalBackend.put``)."""
        hook, plain_put = self, LocalBackend.put
        if getattr(plain_put, 'chaos_slow', False):
            return

        def slow_put(backend, obj, filepath):
            if not str(filepath).endswith(('.pth', '.pth.tmp')):
                return plain_put(backend, obj, filepath)
            step = _checkpoint_iter(filepath)
            hook.mark('ckpt_write', step)
            piece = -(-len(obj) // CKPT_CHUNKS)
            os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
            with open(filepath, 'wb') as f:
                for start in range(0, len(obj), piece):
                    f.write(obj[start:start + piece])
                    f.flush()
                    time.sleep(hook.ckpt_write_s / CKPT_CHUNKS)
            hook.mark('ckpt_written', step)

        slow_put.chaos_slow = True
        LocalBackend.put = slow_put


@HOOKS.register_module()
class ChaosLossHook(Hook):
    priority = 'VERY_HIGH'  # recorded before the checkpoint hook saves the iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        record = dict(iter=runner.iter + 1, losses={k: float(v) for k, v in outputs.items()})
        _append(_chaos_file(runner, 'losses_attempt{attempt}_rank{rank}.jsonl'),
                json.dumps(record))


@TRANSFORMS.register_module()
class ChaosSlowLoad:
    """Sleep ``seconds`` and pass the sample on unchanged (no random draw)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, results: dict) -> dict:
        time.sleep(self.seconds)
        return results
