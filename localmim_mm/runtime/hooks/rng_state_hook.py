"""Random states in runner checkpoints, so that a resumed run continues the same random streams."""
import logging
from typing import List, Optional

import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from ..model_wrappers import unwrap_model
from ..randomness import capture_rng_states, rank0_seed, restore_rng_states
from .atomic_checkpoint_hook import checkpoint_due

__all__ = ['RNGStateHook']


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters(), torch.empty(0)).device


def _restore_generator(module: torch.nn.Module, state: torch.Tensor) -> None:
    try:
        module.mask_generator.set_state(state)
    except RuntimeError as err:  # e.g. a CUDA generator's state resumed on a CPU-only machine
        print_log(f'RNGStateHook: the saved mask generator state of {type(module).__name__} does '
                  f'not fit its {module.mask_generator.device} generator ({err}); masks restart '
                  'from the seed', logger='current', level=logging.WARNING)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save and restore every random state that training consumes.

    mmengine (``compat.TESTED_MMENGINE``) re-seeds a resumed run from the config seed and saves
    no random state, so after ``--resume`` masks, drop-path and data-loading randomness start
    over. This hook:

    * gives each module with a ``mask_generator`` attribute (``LocalMIMViT``) its own generator,
      seeded alike on every rank (rank 0's seed), so masks depend neither on the rank split nor on
      other consumers of the global RNG;
    * gives the train dataloader a private generator: creating a dataloader iterator then no
      longer draws from the global torch RNG (a resumed run creates its iterator at another point
      of the random stream than the uninterrupted one);
    * stores the global torch / CUDA / numpy / python states of every rank and the mask
      generators' states in each checkpoint (``checkpoint['rng_states']``) and restores them
      when resuming (not for ``load_from``: a fine-tune starts its own streams).

    With more than one process rank 0 writes the checkpoint and mmengine calls
    ``before_save_checkpoint`` on rank 0 only, so the ranks' states are all-gathered (one small
    ``all_gather_object``) just before the checkpoint hook runs, and only where it will save
    (``checkpoint_due``): after a by-iteration save iteration, at the end of a by-epoch save
    epoch, after a validation when ``save_best`` is set. Other iterations do no collective work.
    A checkpoint written at another point (not by the checkpoint hook) holds rank 0's states only,
    with a warning; resuming it restores masks, data order and augmentation, not the other
    ranks' global streams.

    Mask generators live on their module's device (``torch.Generator('cuda')`` on GPUs), so
    masks are drawn there without a host-to-device copy.
    """
    priority = 'LOW'  # gathers before CheckpointHook (VERY_LOW) saves at the same stage

    def __init__(self) -> None:
        self._rank_states: Optional[List[dict]] = None
        self._gathered_at: Optional[int] = None  # runner.iter of the gather
        self._resumed: Optional[dict] = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed = checkpoint.get('rng_states')

    def before_train(self, runner) -> None:
        seed = rank0_seed(runner)
        for i, module in enumerate(self._mask_modules(runner)):
            module.mask_generator = torch.Generator(_device_of(module)).manual_seed(seed + i)
        loader = runner.train_dataloader
        if loader.generator is None:
            loader.generator = torch.Generator().manual_seed(seed)
        states, self._resumed = self._resumed, None
        if states is None or runner.iter == 0:  # nothing saved, or load_from (not a resume)
            return
        rank, world_size = get_dist_info()
        for module, state in zip(self._mask_modules(runner), states['mask']):
            _restore_generator(module, state)
        if len(states['ranks']) != world_size:
            print_log(f'RNGStateHook: the checkpoint holds the random states of '
                      f'{len(states["ranks"])} processes, this run has {world_size}; the global '
                      'random states stay freshly seeded (masks are restored)',
                      logger='current', level=logging.WARNING)
            return
        restore_rng_states(states['ranks'][rank])

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._gather_if_due(runner, 'after_train_iter')

    def after_train_epoch(self, runner) -> None:
        self._gather_if_due(runner, 'after_train_epoch')

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._gather_if_due(runner, 'after_val_epoch')

    def _gather_if_due(self, runner, stage: str) -> None:
        if get_dist_info()[1] > 1 and checkpoint_due(runner, stage):
            self._rank_states = all_gather_object(capture_rng_states())
            self._gathered_at = runner.iter

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if get_dist_info()[1] == 1:
            ranks = [capture_rng_states()]
        elif self._gathered_at == runner.iter:
            ranks = self._rank_states
        else:
            print_log(f'RNGStateHook: a checkpoint is written at iteration {runner.iter} '
                      'outside the checkpoint hook\'s schedule; it holds the random states of '
                      'rank 0 only (resuming it restores masks, data order and augmentation)',
                      logger='current', level=logging.WARNING)
            ranks = [capture_rng_states()]
        masks = [m.mask_generator.get_state() for m in self._mask_modules(runner)]
        checkpoint['rng_states'] = dict(ranks=ranks, mask=masks)

    @staticmethod
    def _mask_modules(runner) -> list:
        return [m for m in unwrap_model(runner.model).modules() if hasattr(m, 'mask_generator')]
