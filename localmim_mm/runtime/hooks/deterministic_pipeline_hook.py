"""Data augmentation drawn per sample from (seed, epoch, sample index)."""
import numpy as np
import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ..randomness import rank0_seed, seeded_host_rngs

__all__ = ['DeterministicPipelineHook', 'SeededPipeline']


class SeededPipeline:
    """Runs a pipeline with the global RNGs seeded from (seed, dataset, epoch, sample index).

    The caller's random states are restored afterwards, so a pipeline run in the main process
    (``num_workers=0``) leaves the training process's random streams untouched. ``epoch`` is a
    shared-memory tensor: dataloader workers (forked or spawned, persistent or not) read the
    value the main process sets before each epoch.
    """

    def __init__(self, pipeline, seed: int, dataset_id: int, epoch: torch.Tensor) -> None:
        self.pipeline = pipeline
        self.seed = seed
        self.dataset_id = dataset_id
        self.epoch = epoch

    def sample_seed(self, sample_idx: int) -> int:
        entropy = [self.seed, self.dataset_id, int(self.epoch[0]), sample_idx]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])

    def __call__(self, results: dict):
        if 'sample_idx' not in results:
            raise KeyError('DeterministicPipelineHook: the dataset gives no `sample_idx` in its '
                           'data info; it needs an mmengine BaseDataset')
        with seeded_host_rngs(self.sample_seed(results['sample_idx'])):
            return self.pipeline(results)

    def __repr__(self) -> str:
        return f'SeededPipeline(seed={self.seed}, {self.pipeline!r})'


def leaf_datasets(dataset) -> list:
    """The datasets that own a pipeline, through mmengine's dataset wrappers."""
    if hasattr(dataset, 'datasets'):  # ConcatDataset
        return [leaf for d in dataset.datasets for leaf in leaf_datasets(d)]
    if hasattr(dataset, 'dataset'):  # RepeatDataset, ClassBalancedDataset
        return leaf_datasets(dataset.dataset)
    return [dataset]


@HOOKS.register_module()
class DeterministicPipelineHook(Hook):
    """Make the augmentation of a sample a function of (seed, epoch, sample index) only.

    By default mmengine seeds each dataloader worker once (``seed + num_workers * rank +
    worker_id``), so the augmentation a sample gets depends on which worker and rank loads it and
    on everything that worker drew before; ``persistent_workers`` carry their streams across
    epochs. A resumed run (fresh workers) or a run with another number of processes therefore
    augments differently. Seeding each sample from (seed, epoch, index) makes it independent of
    workers, ranks and resumption, at the cost of one ``SeedSequence`` per sample.

    The train dataset's ``pipeline`` is wrapped in ``before_train`` (before any worker starts);
    the epoch is published in ``before_train_epoch``. The seed is rank 0's runner seed.
    """
    priority = 'NORMAL'

    def __init__(self) -> None:
        self.epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def before_train(self, runner) -> None:
        seed = rank0_seed(runner)
        for i, dataset in enumerate(leaf_datasets(runner.train_dataloader.dataset)):
            if not isinstance(dataset.pipeline, SeededPipeline):
                dataset.pipeline = SeededPipeline(dataset.pipeline, seed, i, self.epoch)

    def before_train_epoch(self, runner) -> None:
        self.epoch[0] = runner.epoch
