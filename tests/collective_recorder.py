"""Imported by the training subprocesses of ``tests/test_hook_costs.py`` (``custom_imports``).

* Wraps the collectives of ``torch.distributed`` (which ``mmengine.dist`` calls) so that every
  call is written to ``<work_dir>/collectives_rank<r>.jsonl`` with the training stage, the
  iteration (1-based) and the hook it came from.
* ``NaNLossOnRankHook`` turns every loss term of one rank at one iteration into NaN.
"""
import json
import os.path as osp
import sys

import torch.distributed as torch_dist
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

COLLECTIVES = ('all_reduce', 'all_gather', 'all_gather_object', 'all_gather_into_tensor',
               'broadcast', 'broadcast_object_list', 'reduce', 'reduce_scatter',
               'reduce_scatter_tensor', 'gather', 'gather_object', 'scatter',
               'scatter_object_list', 'all_to_all', 'barrier')
_now: dict = {}  # path of this rank's record, and where training is


def _calling_hook():
    frame = sys._getframe(2)
    while frame is not None:
        owner = frame.f_locals.get('self')
        if isinstance(owner, Hook) and not isinstance(owner, CollectiveRecorderHook):
            return type(owner).__name__
        frame = frame.f_back
    return None


def _recorded(name, collective):
    def call(*args, **kwargs):
        if 'path' in _now:
            with open(_now['path'], 'a') as f:
                f.write(json.dumps(dict(_now['at'], name=name, hook=_calling_hook())) + '\n')
        return collective(*args, **kwargs)
    return call


for _name in COLLECTIVES:
    if hasattr(torch_dist, _name):
        setattr(torch_dist, _name, _recorded(_name, getattr(torch_dist, _name)))


@HOOKS.register_module(force=True)
class CollectiveRecorderHook(Hook):
    priority = 'HIGHEST'

    def before_train(self, runner):
        _now.update(path=osp.join(runner.work_dir, f'collectives_rank{get_rank()}.jsonl'),
                    at=dict(stage='before_train', iter=0))

    def before_train_epoch(self, runner):
        _now['at'] = dict(stage='before_train_epoch', iter=runner.iter)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        _now['at'] = dict(stage='train_iter', iter=runner.iter + 1)

    def after_train_epoch(self, runner):
        _now['at'] = dict(stage='after_train_epoch', iter=runner.iter)


@HOOKS.register_module(force=True)
class NaNLossOnRankHook(Hook):

    def __init__(self, rank: int, iteration: int):
        self.rank, self.iteration = rank, iteration

    def before_train(self, runner):
        if get_rank() != self.rank:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        loss = model.loss

        def loss_with_nan(*args, **kwargs):
            losses = loss(*args, **kwargs)
            if runner.iter + 1 == self.iteration:
                losses = {k: v * float('nan') for k, v in losses.items()}
            return losses

        model.loss = loss_with_nan
