"""The run length in every checkpoint, and a clear word when ``--resume`` finds the run finished
(added to every run by ``tools/train.py``)."""
import logging
import math
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import find_latest_checkpoint

__all__ = ['RunLengthCheck', 'finished_message']


def finished_message(config_path: str, work_dir: str, where: str, checkpoint: str,
                     by_epoch: bool) -> str:
    length = '--epochs N' if by_epoch else '--cfg-options train_cfg.max_iters=N'
    return (f'Nothing to train: the run in {work_dir} already finished (resumed at {where}). To '
            'train longer, start a new run from its weights with a fresh schedule:\n    python '
            f'tools/train.py {config_path} {length} --work-dir NEW_WORK_DIR --cfg-options '
            f'load_from={checkpoint}\n(a resume keeps the finished schedule: longer, it would '
            "train at the schedule's final learning rate).")


class RunLengthCheck(Hook):
    """What ``tools/train.py`` adds to every run:

    * every checkpoint records the run length it trains for and where its schedule ends
      (``meta['run_length']``: ``max_epochs`` for epoch-based loops, ``max_iters``,
      ``schedule_end_iter``), so a ``--resume`` that the saved schedule cannot serve is refused
      before anything is built (:mod:`localmim_mm.runtime.checkpoints.resume_length`);
    * ``--resume`` of a finished run (its last checkpoint at ``max_epochs`` / ``max_iters``)
      says so and how to train longer; mmengine alone trains nothing and exits 0 silently. The
      exit status stays 0 (a re-queued job that finds its run finished is not a failure).
    """
    priority = 'VERY_HIGH'  # before any other hook's before_train work

    def __init__(self, config_path: str) -> None:
        self.config_path = config_path

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        loop = runner.train_loop
        length = {'max_epochs': loop.max_epochs} if hasattr(loop, 'max_epochs') else {}
        length.update(max_iters=runner.max_iters, schedule_end_iter=_schedule_end(runner))
        checkpoint.setdefault('meta', {})['run_length'] = {
            k: (int(v) if v is not None else None) for k, v in length.items()}

    def before_train(self, runner) -> None:
        if runner.iter >= runner.max_iters:
            self._say_finished(runner)

    def _say_finished(self, runner) -> None:
        epochs = getattr(runner.train_loop, 'max_epochs', None)
        where = (f'epoch {runner.epoch} of max_epochs={epochs}' if epochs is not None
                 else f'iteration {runner.iter} of max_iters={runner.max_iters}')
        checkpoint = (runner.message_hub.get_info('last_ckpt')
                      or find_latest_checkpoint(runner.work_dir) or 'CHECKPOINT')
        print_log(finished_message(self.config_path, runner.work_dir, where, checkpoint,
                                   epochs is not None),
                  logger='current', level=logging.WARNING)


def _schedule_end(runner) -> Optional[int]:
    """The last iteration any parameter scheduler of the run changes; None if one never ends."""
    schedulers = runner.param_schedulers or []
    if isinstance(schedulers, dict):
        schedulers = [s for group in schedulers.values() for s in group]
    ends = []
    for scheduler in schedulers:
        if math.isinf(scheduler.end):
            return None
        ends.append(scheduler.end * (len(runner.train_dataloader) if scheduler.by_epoch else 1))
    return max(ends, default=0)
