"""Resume an epoch-based run from a checkpoint saved in the middle of an epoch."""
import itertools

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

__all__ = ['MidEpochResumeHook', 'SkipFirstSampler']


class SkipFirstSampler:
    """The indices of ``sampler`` without the first ``skip`` (those already trained on)."""

    def __init__(self, sampler, skip: int) -> None:
        self.sampler = sampler
        self.skip = skip

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)


@HOOKS.register_module()
class MidEpochResumeHook(Hook):
    """Skip the batches of the resumed epoch that the checkpoint has already trained on.

    mmengine's ``EpochBasedTrainLoop`` (``compat.TESTED_MMENGINE``) restores ``iter`` and ``epoch``
    from a checkpoint but starts the epoch from its first batch, so a checkpoint saved by iteration
    (``CheckpointHook(by_epoch=False)``) trains the start of that epoch twice (and the epoch runs
    past its length in iterations). This hook hands the first resumed epoch a sampler without the
    consumed indices; the skipped samples are not loaded. The sampler order is a function of (seed,
    epoch), so the remaining batches are those of the uninterrupted run.

    In the log, the batch index of that one epoch counts from the resume point. Iteration-based
    loops are left alone (mmengine skips their batches itself).
    """
    priority = 'NORMAL'

    def __init__(self) -> None:
        self._sampler = None

    def before_train_epoch(self, runner) -> None:
        loop = runner.train_loop
        done = runner.iter - runner.epoch * len(loop.dataloader)
        if not isinstance(loop, EpochBasedTrainLoop) or done <= 0:
            return
        batch_sampler = loop.dataloader.batch_sampler
        if batch_sampler is None or not hasattr(batch_sampler, 'batch_size'):
            raise RuntimeError('MidEpochResumeHook: the train dataloader has no batch sampler '
                               'with a batch_size; cannot skip the consumed part of the epoch')
        self._sampler = batch_sampler.sampler
        batch_sampler.sampler = SkipFirstSampler(self._sampler, done * batch_sampler.batch_size)
        print_log(f'MidEpochResumeHook: resuming epoch {runner.epoch + 1} after its first {done} '
                  f'iterations; skipping {done * batch_sampler.batch_size} samples',
                  logger='current')

    def after_train_epoch(self, runner) -> None:
        if self._sampler is not None:
            runner.train_loop.dataloader.batch_sampler.sampler = self._sampler
            self._sampler = None
