"""Stop training at the first NaN / inf loss, before it reaches a checkpoint."""
import math

import torch
from mmengine.dist import all_reduce, get_dist_info
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

__all__ = ['NonFiniteLossHook']


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise ``FloatingPointError`` naming the iteration and the loss terms when a loss is not
    finite.

    It runs after each iteration ahead of the logger and the ``CheckpointHook`` (priority
    ``VERY_HIGH``), so the weights updated by a non-finite step are never written and the last
    checkpoint stays the last good one. With several processes a flag is all-reduced, so every
    rank stops at the same iteration (a single rank's NaN reaches all of them through DDP's
    gradient averaging anyway).
    """
    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if not outputs:
            return
        terms = {k: float(torch.as_tensor(v).detach()) for k, v in outputs.items() if 'loss' in k}
        finite = all(math.isfinite(v) for v in terms.values())
        rank, world_size = get_dist_info()
        if world_size > 1:
            flag = torch.tensor([float(finite)])
            all_reduce(flag, op='min')
            all_finite = bool(flag.item())
        else:
            all_finite = finite
        if all_finite:
            return
        listed = ', '.join(f'{k}={v}' for k, v in terms.items())
        where = f' (rank {rank}: {listed}; non-finite on another rank)' if finite else (
            f' on rank {rank}' if world_size > 1 else '') + f': {listed}'
        raise FloatingPointError(
            f'Non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}){where}. '
            'Training stopped before saving; the last checkpoint is the last good one. Lower the '
            'learning rate, check the data, or resume from that checkpoint.')
