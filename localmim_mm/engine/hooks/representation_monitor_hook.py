"""k-NN (and optionally linear-probe) accuracy of the encoder while it pre-trains."""
import functools
import logging
import time
from typing import Dict, Optional

import torch
from mmengine.dist import broadcast_object_list, collect_results, get_dist_info
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from ...analysis.images import preprocess_rgb
from ...evaluation import (extract_features, knn_accuracy, linear_probe_accuracy,
                           load_image_folder)
from ...models.utils import model_input_size
from ...runtime.model_wrappers import unwrap_model
from .periodic_check_hook import PeriodicCheckHook
from .training_state_guard import guard_training_state

__all__ = ['RepresentationMonitorHook']


@HOOKS.register_module()
class RepresentationMonitorHook(PeriodicCheckHook):
    """Every ``interval`` epochs (or iterations) score the current encoder on a small labelled
    image folder: k-NN top-1 of the ``val_split`` images against a bank of ``train_split``
    images, and optionally a linear probe, in percent.

    The scores are logged (``Monitor(...)`` lines), kept in the message hub as
    ``monitor/knn_top1`` (``monitor/linear_top1``, ``monitor/seconds``), and written through the
    visualizer, so they land in ``vis_data/scalars.json`` (step = training iteration) and in
    TensorBoard / W&B when those back ends are configured.

    Features are those of ``localmim_mm.evaluation.extract_features``: the unmasked encoder's
    last block, average-pooled over the patch tokens (a Swin's last stage, pooled over
    positions). The folder is decoded once, before training, at the model's input size and
    kept in memory (1000 images at 224 px: 150 MB per process).

    **Multi-process**: each rank extracts the features of every ``world_size``-th image, rank 0
    collects them (``mmengine.dist.collect_results``), scores them once and broadcasts the scores,
    so every rank logs the same numbers as a single-process run. Collectives happen only on
    monitored iterations.

    **Training is unchanged**: the check runs under :func:`guard_training_state` (global and
    mask random states, module modes restored; no gradients), uses no dataloader and draws no
    random number, so losses, weights and bit-exact ``--resume`` are those of a run without the
    monitor.

    **Cost**: one forward pass of the encoder over the folder (plus the probe's training, if
    on) per check; the log line gives its time and its share of the training time since the
    previous check, and a warning names the setting to change when that share exceeds
    ``warn_share``.

    Args:
        data_root (str): Labelled image folder, ``<data_root>/<split>/<class>/<image>``.
        train_split (str): Split whose features form the k-NN bank / probe training set.
        val_split (str): Split that is scored.
        interval (int): Check every ``interval`` epochs (``by_epoch``) or iterations.
        by_epoch (bool): Count ``interval`` in epochs (default) or iterations.
        initial (bool): Also score the initial encoder before the first iteration (not when
            resuming), the start of the curve.
        per_class (int, optional): Use the first N images of each class of each split.
        k (int): Neighbours. Defaults to 20 (temperature-weighted vote, as DINO).
        temperature (float): k-NN vote temperature. Defaults to 0.07.
        linear_probe (bool): Also train a linear probe (``probe_epochs`` epochs, AdamW).
        probe_epochs (int): Epochs of the linear probe. Defaults to 100.
        batch_size (int): Images per forward pass. Defaults to 64.
        warn_share (float): Warn when a check costs more than this share of the training time
            since the previous one. Defaults to 0.1.
    """

    def __init__(self,
                 data_root: str,
                 train_split: str = 'train',
                 val_split: str = 'val',
                 interval: int = 1,
                 by_epoch: bool = True,
                 initial: bool = True,
                 per_class: Optional[int] = None,
                 k: int = 20,
                 temperature: float = 0.07,
                 linear_probe: bool = False,
                 probe_epochs: int = 100,
                 batch_size: int = 64,
                 warn_share: float = 0.1) -> None:
        super().__init__(interval=interval, by_epoch=by_epoch, initial=initial)
        for name, value in (('k', k), ('batch_size', batch_size), ('probe_epochs', probe_epochs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'RepresentationMonitorHook: {name}={value!r} must be an '
                                 'integer >= 1')
        if temperature is not None and temperature <= 0:
            raise ValueError(f'RepresentationMonitorHook: temperature={temperature!r} must be '
                             '> 0 (or None for a plain majority vote)')
        self.data_root = data_root
        self.splits = (train_split, val_split)
        self.per_class = per_class
        self.knn_args = dict(k=k, temperature=temperature)
        self.linear_probe = linear_probe
        self.probe_epochs = probe_epochs
        self.batch_size = batch_size
        self.warn_share = warn_share
        self._data = None
        self._since = None  # when the training time of the current check period started

    def setup(self, runner) -> None:
        self._data = self._load(unwrap_model(runner.model))
        self._since = time.perf_counter()

    def check(self, runner, epoch: int, iteration: int) -> None:
        self._check(runner, step=iteration, epoch=epoch)

    # ------------------------------------------------------------------ the check
    def _load(self, model) -> dict:
        size = model_input_size(model)
        if size[0] != size[1]:
            raise ValueError(f'RepresentationMonitorHook: the model takes {size[0]}x{size[1]} '
                             'inputs; the monitor resizes its images to squares only')
        bank, bank_labels, classes = load_image_folder(self.data_root, self.splits[0], size[0],
                                                       self.per_class)
        query, query_labels, query_classes = load_image_folder(self.data_root, self.splits[1],
                                                               size[0], self.per_class)
        if query_classes != classes:
            raise ValueError(f'RepresentationMonitorHook: the classes of {self.splits[1]!r} '
                             f'{query_classes} differ from those of {self.splits[0]!r} '
                             f'{classes} under {self.data_root}')
        if self.knn_args['k'] > len(bank):
            raise ValueError(f'RepresentationMonitorHook: k={self.knn_args["k"]} exceeds the '
                             f'{len(bank)} images of {self.data_root}/{self.splits[0]}; lower k')
        rank, world_size = get_dist_info()
        images = torch.cat([bank, query])
        print_log(f'RepresentationMonitorHook: {len(bank)} {self.splits[0]} / {len(query)} '
                  f'{self.splits[1]} images of {len(classes)} classes from {self.data_root} at '
                  f'{size[0]}x{size[1]} px', logger='current')
        return dict(images=images[rank::world_size], num_bank=len(bank), total=len(images),
                    labels=(bank_labels, query_labels))

    def _check(self, runner, step: int, epoch: int) -> None:
        start = time.perf_counter()
        trained = start - self._since
        with guard_training_state(runner.model) as model:
            feats = self._gathered_features(model)
            scores = [self._scores(feats) if feats is not None else None]
            if get_dist_info()[1] > 1:
                broadcast_object_list(scores)
        seconds = time.perf_counter() - start
        scores = dict(scores[0], seconds=seconds)
        self._report(runner, step, epoch, scores, share=seconds / trained if step else None)
        self._since = time.perf_counter()

    def _gathered_features(self, model) -> Optional[torch.Tensor]:
        """Features of every image, in folder order, each computed on one rank only; on rank 0
        (None on the others)."""
        feats = extract_features(model.backbone, self._data['images'],
                                 batch_size=self.batch_size,
                                 device=next(model.parameters()).device,
                                 preprocess=functools.partial(preprocess_rgb,
                                                              model.data_preprocessor))
        # The 'gpu' mode is one all_gather_object (gloo runs it too): no shared temporary folder.
        gathered = collect_results(list(feats), self._data['total'], device='gpu')
        return torch.stack(gathered) if gathered is not None else None

    def _scores(self, feats: torch.Tensor) -> Dict[str, float]:
        bank_labels, query_labels = self._data['labels']
        bank, query = feats[:self._data['num_bank']], feats[self._data['num_bank']:]
        knn = knn_accuracy(bank, bank_labels, query, query_labels, **self.knn_args)
        scores = dict(knn_top1=round(100 * knn, 4))
        if self.linear_probe:
            # The probe trains (its own seeded generator; the global draws of building its
            # classifier are undone by guard_training_state).
            with torch.enable_grad():
                probe = linear_probe_accuracy(bank, bank_labels, query, query_labels,
                                              epochs=self.probe_epochs)
            scores['linear_top1'] = round(100 * probe, 4)
        return scores

    def _report(self, runner, step: int, epoch: int, scores: Dict[str, float], share) -> None:
        tags = {f'monitor/{key}': value for key, value in scores.items()}
        for key, value in tags.items():
            runner.message_hub.update_scalar(key, value)
        runner.visualizer.add_scalars(dict(tags, epoch=epoch), step=step)
        when = (f'epoch {epoch}' if self.by_epoch else f'iter {step}') if step else 'initial'
        shown = '  '.join(f'{k}: {v:.2f}' for k, v in scores.items() if k != 'seconds')
        cost = f'{scores["seconds"]:.1f} s' + (
            f', {share:.1%} of the training time since the previous check' if share else '')
        print_log(f'Monitor({when}) [{step}]  {shown}  ({cost})', logger='current')
        if share is not None and share > self.warn_share:
            print_log(f'RepresentationMonitorHook: the check took {share:.0%} of the training '
                      f'time since the previous one (warn_share={self.warn_share}); raise '
                      f'interval={self.interval} or lower per_class={self.per_class}',
                      logger='current', level=logging.WARNING)
