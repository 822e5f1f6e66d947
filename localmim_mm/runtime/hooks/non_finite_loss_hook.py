"""Stop training at the first NaN / inf loss, before it reaches a checkpoint."""
import math
from typing import Dict

import torch
from mmengine.dist import all_reduce, get_dist_info
from mmengine.hooks import Hook, RuntimeInfoHook
from mmpretrain.registry import HOOKS

from ..compat import require_tested_mmengine
from .atomic_checkpoint_hook import checkpoint_follows_iter

__all__ = ['NonFiniteLossHook']


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise ``FloatingPointError`` naming the iteration and the loss terms when a loss is not
    finite.

    The rule, at no cost beyond what mmengine already does:

    * **every iteration, on each rank**: mmengine's ``RuntimeInfoHook`` (priority ``VERY_HIGH``)
      copies every loss term to the host for the log; this hook runs right after it (priority
      ``HIGH``) and reads those host values from the message hub, so it adds no device
      synchronisation. It runs ahead of EMA, the logger and the checkpoint hook, so the weights
      updated by a non-finite step are never written and the last checkpoint stays the last good
      one. Without a ``RuntimeInfoHook`` ahead of it, it converts the losses itself.
    * **before each checkpoint, across ranks**: with several processes, after an iteration that
      a checkpoint follows (``checkpoint_follows_iter``: a by-iteration save iteration, or the
      last iteration of a by-epoch save epoch) a flag is all-reduced (``min``), so a checkpoint
      is written only once every rank has reported finite losses for the step it holds, and
      every rank raises together. On other iterations the rank that sees a non-finite loss
      raises at once; the others stop at their next collective (DDP's gradient all-reduce, or
      the flag before the checkpoint), where the launcher ends them (``torch.distributed.run``;
      ``srun --kill-on-bad-exit``). A NaN on one rank also reaches every rank's weights through
      DDP's gradient averaging, so their next local check fails too.

    Hence a NaN / inf loss at any iteration stops the run before its next checkpoint, and only
    iterations followed by a checkpoint do collective work.
    """
    priority = 'HIGH'  # after RuntimeInfoHook (VERY_HIGH), before EMA, logger and checkpoints

    def __init__(self) -> None:
        require_tested_mmengine('NonFiniteLossHook (it reads the loss values RuntimeInfoHook '
                                "logs as 'train/<loss>' in the message hub)")
        self._reads_message_hub = False

    def before_train(self, runner) -> None:
        hooks = runner.hooks
        mine = next((i for i, h in enumerate(hooks) if h is self), 0)
        self._reads_message_hub = any(isinstance(h, RuntimeInfoHook) for h in hooks[:mine])

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if not outputs:
            return
        terms = self._host_losses(runner, outputs)
        finite = all(math.isfinite(v) for v in terms.values())
        all_finite = finite
        if get_dist_info()[1] > 1 and checkpoint_follows_iter(runner, batch_idx):
            flag = torch.tensor([float(finite)])
            all_reduce(flag, op='min')
            all_finite = bool(flag.item())
        if not all_finite:
            self._raise(runner, terms, finite)

    def _host_losses(self, runner, outputs: dict) -> Dict[str, float]:
        names = [k for k in outputs if 'loss' in k]
        if self._reads_message_hub:
            hub = runner.message_hub
            return {k: float(hub.get_scalar(f'train/{k}').current()) for k in names}
        return {k: float(torch.as_tensor(outputs[k]).detach()) for k in names}

    @staticmethod
    def _raise(runner, terms: Dict[str, float], finite: bool) -> None:
        rank, world_size = get_dist_info()
        listed = ', '.join(f'{k}={v}' for k, v in terms.items())
        where = f' (rank {rank}: {listed}; non-finite on another rank)' if finite else (
            f' on rank {rank}' if world_size > 1 else '') + f': {listed}'
        raise FloatingPointError(
            f'Non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}){where}. '
            'Training stopped before saving; the last checkpoint is the last good one. Lower the '
            'learning rate, check the data, or resume from that checkpoint.')
