"""What the LocalMIM training aids share: a check every N epochs or iterations."""
from mmengine.hooks import Hook

__all__ = ['PeriodicCheckHook']


class PeriodicCheckHook(Hook):
    """Runs :meth:`check` every ``interval`` epochs (``by_epoch``) or iterations, after the last
    epoch (iteration) in any case, and with ``initial`` once before the first iteration (not
    when resuming). Subclasses implement :meth:`setup` (before training) and :meth:`check`.

    ``check(runner, epoch, iteration)`` gets the epochs and iterations completed so far (both 0
    for the initial check).
    """
    priority = 'NORMAL'  # after_train_epoch before the CheckpointHook (VERY_LOW)

    def __init__(self, interval: int = 1, by_epoch: bool = True, initial: bool = False) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f'{type(self).__name__}: interval={interval!r} must be an integer '
                             '>= 1')
        self.interval = interval
        self.by_epoch = by_epoch
        self.initial = initial

    def setup(self, runner) -> None:
        """Prepare the check (before training)."""

    def check(self, runner, epoch: int, iteration: int) -> None:
        raise NotImplementedError

    def before_train(self, runner) -> None:
        self.setup(runner)
        if self.initial and runner.iter == 0:
            self.check(runner, epoch=0, iteration=0)

    def after_train_epoch(self, runner) -> None:
        if self.by_epoch and (self.every_n_epochs(runner, self.interval)
                              or self.is_last_train_epoch(runner)):
            self.check(runner, epoch=runner.epoch + 1, iteration=runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if not self.by_epoch and (self.every_n_train_iters(runner, self.interval)
                                  or self.is_last_train_iter(runner)):
            self.check(runner, epoch=runner.epoch + 1, iteration=runner.iter + 1)
