"""Whether the runner's checkpoint hook writes a checkpoint at this point of training.

Hooks that need a collective only for what goes into a checkpoint (``RNGStateHook``) or only
before a checkpoint may be written (``NonFiniteLossHook``) ask this at the same hook stage,
ahead of the checkpoint hook (which has priority ``VERY_LOW``), and do their collective work only
when the answer is yes. The answer is the checkpoint hook's own rule (mmengine 0.10.7), evaluated
with its own settings, so it is the same on every rank:

* ``after_train_iter``: by-iteration saving, every ``interval`` iterations counted from
  ``save_begin``, and the last iteration when ``save_last``;
* ``after_train_epoch``: by-epoch saving, every ``interval`` epochs counted from ``save_begin``,
  and the last epoch when ``save_last``; the epoch's last ``after_train_iter`` has run by then;
* ``after_val_epoch``: ``save_best`` may write the best checkpoint after any validation.

Without a ``CheckpointHook`` (or subclass such as ``AtomicCheckpointHook``) the answer is no.
``checkpoint_follows_iter`` asks, after an iteration, whether a checkpoint is saved before the
next one (at this iteration, or at the end of the epoch this iteration closes).
"""
from mmengine.hooks import CheckpointHook
from mmengine.runner import EpochBasedTrainLoop

__all__ = ['checkpoint_due', 'checkpoint_follows_iter']

STAGES = ('after_train_iter', 'after_train_epoch', 'after_val_epoch')


def checkpoint_due(runner, stage: str) -> bool:
    """True when a checkpoint hook of ``runner`` may save at hook stage ``stage`` now."""
    if stage not in STAGES:
        raise ValueError(f'checkpoint_due: stage {stage!r} is not one of {STAGES}')
    return any(_due(hook, runner, stage) for hook in runner.hooks
               if isinstance(hook, CheckpointHook))


def _due(hook: CheckpointHook, runner, stage: str) -> bool:
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
