"""Changing the length of a run without leaving its learning-rate schedule unfinished.

``tools/train.py --epochs N`` calls :func:`set_epochs`. Overriding only
``train_cfg.max_epochs`` stops a cosine schedule part-way: the tiny 20-epoch recipe cut to 5
epochs that way ends at lr 1.76e-4, near its peak 1.875e-4, where the recipe ends at 1e-6.
The rule here: **every boundary of every
parameter scheduler** (``begin``, ``end``, ``T_max``, ``milestones``) **is multiplied by
N / max_epochs**, so each phase keeps its share of the run (a 2-of-20-epoch warm-up becomes 0.5
of 5 epochs) and the schedule ends where the recipe's does: the last iteration trains one cosine
step above ``eta_min``, as in the full recipe. Schedulers with ``convert_to_iter_based=True`` (all
of this project's recipes) keep fractional epochs, which mmengine turns into whole iterations;
plain epoch-based schedulers are rounded to whole epochs.

Any run of at least one iteration trains: :func:`fit_schedule_to_run` (once the train dataloader
is built, so the iterations per epoch are known, for this world size) drops every phase this run
gives fewer than 2 iterations, saying so. A warm-up that short collapses to none: mmengine's
``LinearLR`` never leaves its ``start_factor`` in a single-iteration phase, and an empty one is
refused by mmengine ("end should be larger than begin").

:class:`~localmim_mm.runtime.hooks.RunLengthCheck` writes the run length into every checkpoint
(``meta['run_length']``, read by :mod:`localmim_mm.runtime.checkpoints.resume_length` before a
``--resume``) and makes ``--resume`` of a finished run say so instead of exiting silently.
"""
import logging
import math
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log

__all__ = ['set_epochs', 'fit_schedule_to_run', 'run_length_of']

_BOUNDARIES = ('begin', 'end', 'T_max')


def set_epochs(cfg: Config, epochs: int, overrides: Optional[dict] = None) -> float:
    """Train for ``epochs`` and rescale every parameter scheduler to match; returns the factor.

    ``overrides``: the ``--cfg-options`` already merged into ``cfg``; one that sets the run length
    too is refused, as is a config that does not train by epochs (``SystemExit`` naming it).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise SystemExit(f'--epochs {epochs!r}: give a whole number of epochs >= 1')
    clashing = [k for k in overrides or {} if k in ('train_cfg.max_epochs', 'train_cfg')]
    if clashing:
        raise SystemExit(f'--epochs {epochs} and --cfg-options {clashing[0]}=... both set the '
                         'run length; keep --epochs (it also rescales the lr schedule)')
    train_cfg = cfg.get('train_cfg') or {}
    recipe_epochs = train_cfg.get('max_epochs')
    if recipe_epochs is None or 'max_iters' in train_cfg or train_cfg.get('by_epoch') is False:
        raise SystemExit(
            f'--epochs needs an epoch-based training loop, but this config sets train_cfg='
            f'{dict(train_cfg)}; set the length of an iteration-based run with '
            '--cfg-options train_cfg.max_iters=... and its schedulers by hand')
    factor = epochs / recipe_epochs
    schedulers = cfg.get('param_scheduler')
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for scheduler in schedulers or []:
        _rescale(scheduler, factor)
    cfg.train_cfg.max_epochs = epochs
    print_log(f'--epochs {epochs}: max_epochs {recipe_epochs} -> {epochs}; every parameter '
              f'scheduler boundary x {factor:g} (warm-up keeps its share of the run, the '
              'schedule ends on the last iteration)', logger='current')
    return factor


def _rescale(scheduler: dict, factor: float) -> None:
    by_epoch = scheduler.get('by_epoch', True)
    fractional = by_epoch and scheduler.get('convert_to_iter_based', False)

    def scaled(value):
        if value is None or (isinstance(value, float) and math.isinf(value)):
            return value
        value = value * factor
        return value if fractional else max(int(round(value)), 0)

    span = _span(scheduler)
    for key in _BOUNDARIES:
        if key in scheduler:
            scheduler[key] = scaled(scheduler[key])
    if 'milestones' in scheduler:
        scheduler['milestones'] = [scaled(m) for m in scheduler['milestones']]
    if span is not None and scheduler.get('T_max') is not None:
        # T_max spanned exactly begin..end: let mmengine derive it from the converted integer
        # boundaries, so the cosine ends precisely at `end` whatever the rounding.
        scheduler['T_max'] = None
    if not fractional and 'end' in scheduler and 'begin' in scheduler \
            and scheduler['end'] is not None and scheduler['end'] <= scheduler['begin']:
        scheduler['end'] = scheduler['begin'] + 1


def _span(scheduler: dict) -> Optional[float]:
    """``end - begin`` when ``T_max`` equals it (the usual cosine), else ``None``."""
    begin, end, t_max = (scheduler.get(k) for k in ('begin', 'end', 'T_max'))
    if t_max is None or end is None or math.isinf(end):
        return None
    return t_max if math.isclose(t_max, end - (begin or 0)) else None


def fit_schedule_to_run(runner) -> None:
    """Drop every parameter-scheduler phase that spans fewer than 2 iterations of this run.

    Call it after the runner is built and before ``runner.train()``: it builds the train loop
    (``runner.train_dataloader``, public and lazy; ``train()`` reuses it) to learn the
    iterations per epoch, then edits the scheduler configs the runner has not built yet.
    """
    schedulers = runner.param_schedulers
    if not schedulers:
        return
    epoch_length = len(runner.train_dataloader)
    if _per_optimizer(schedulers):
        runner.param_schedulers = {name: _fitted(group, runner, epoch_length)
                                   for name, group in schedulers.items()}
    else:
        runner.param_schedulers = _fitted(schedulers, runner, epoch_length)


def _fitted(phases, runner, epoch_length: int) -> list:
    phases = [phases] if isinstance(phases, dict) else list(phases)
    return [p for p in phases if not _too_short(p, runner, epoch_length)]


def _per_optimizer(schedulers) -> bool:
    return isinstance(schedulers, dict) and 'type' not in schedulers


def _too_short(phase, runner, epoch_length: int) -> bool:
    """True (and said) when ``phase`` (a config dict) gets fewer than 2 iterations."""
    if not isinstance(phase, dict):
        return False
    by_epoch = phase.get('by_epoch', True)
    if by_epoch and not phase.get('convert_to_iter_based', False):
        return False  # stepped per epoch: a phase of one epoch is a whole step
    unit = epoch_length if by_epoch else 1
    end = phase.get('end', runner.max_epochs if by_epoch else runner.max_iters)
    if end is None or math.isinf(end):
        return False
    begin, end = int(phase.get('begin', 0) * unit), int(end * unit)  # as mmengine converts
    if end - begin >= 2:
        return False
    print_log(f'{phase.get("type")} spans iterations {begin}..{end} of this run '
              f'({runner.max_iters} iterations, {epoch_length} per epoch): fewer than 2, so it '
              'is dropped (a warm-up that short collapses to none; those iterations train at the '
              'lr the next phase starts from)', logger='current', level=logging.WARNING)
    return True


def run_length_of(train_cfg) -> Optional[dict]:
    """``{'max_epochs': N}`` or ``{'max_iters': N}`` of a train loop config (or None)."""
    train_cfg = train_cfg or {}
    for key in ('max_epochs', 'max_iters'):
        if train_cfg.get(key) is not None:
            return {key: int(train_cfg[key])}
    return None
