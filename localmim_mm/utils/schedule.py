"""Changing the length of a run without leaving its learning-rate schedule unfinished.

``tools/train.py --epochs N`` calls :func:`set_epochs`. Overriding only
``train_cfg.max_epochs`` stops a cosine schedule part-way: the tiny 20-epoch recipe cut to 5
epochs that way ends at lr 1.76e-4, near its peak 1.875e-4, where the recipe ends at 1e-6. The rule here: **every boundary of every
parameter scheduler** (``begin``, ``end``, ``T_max``, ``milestones``) **is multiplied by
N / max_epochs**, so each phase keeps its share of the run (a 2-of-20-epoch warm-up becomes 0.5
of 5 epochs) and the schedule ends where the recipe's does: the last iteration trains one cosine
step above ``eta_min``, as in the full recipe. Schedulers with ``convert_to_iter_based=True`` (all
of this project's recipes) keep fractional epochs, which mmengine turns into whole iterations;
plain epoch-based schedulers are rounded to whole epochs. A phase that ends up shorter than 2
iterations is refused (by mmengine when it is empty: "end should be larger than begin", else by
:class:`RunLengthCheck`).

:class:`RunLengthCheck` refuses a phase of fewer than 2 iterations (a warm-up shortened that far
would never end) and makes ``--resume`` of a finished run say so instead of exiting silently.
"""
import logging
import math
from typing import Optional

from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import print_log

__all__ = ['set_epochs', 'RunLengthCheck']

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


class RunLengthCheck(Hook):
    """Checks ``tools/train.py`` adds to every run, once the schedulers are built:

    * a scheduler phase shorter than 2 iterations is refused, naming it: mmengine's ``LinearLR``
      never leaves its ``start_factor`` when its phase is a single iteration, so such a
      shortened warm-up would train the whole run at a tiny lr;
    * ``--resume`` of a finished run (its last checkpoint at ``max_epochs`` / ``max_iters``)
      says so and how to train longer; mmengine alone trains nothing and exits 0 silently. The
      exit status stays 0 (a re-queued job that finds its run finished is not a failure).
    """
    priority = 'VERY_HIGH'  # before any other hook's before_train work

    def __init__(self, config_path: str) -> None:
        self.config_path = config_path

    def before_train(self, runner) -> None:
        self._check_phases(runner)
        if runner.iter >= runner.max_iters:
            self._say_finished(runner)

    @staticmethod
    def _check_phases(runner) -> None:
        schedulers = runner.param_schedulers or []
        if isinstance(schedulers, dict):
            schedulers = [s for group in schedulers.values() for s in group]
        for scheduler in schedulers:
            if scheduler.by_epoch or math.isinf(scheduler.end):
                continue
            if scheduler.end - scheduler.begin < 2:
                raise ValueError(
                    f'{type(scheduler).__name__} spans iterations {scheduler.begin}..'
                    f'{scheduler.end} of this run ({runner.max_iters} iterations of '
                    f'{len(runner.train_dataloader)} per epoch): a phase needs at least 2 '
                    'iterations. Train more epochs (--epochs), use a smaller batch, or remove '
                    'the phase from param_scheduler.')

    def _say_finished(self, runner) -> None:
        epochs = getattr(runner.train_loop, 'max_epochs', None)
        where = (f'epoch {runner.epoch} of max_epochs={epochs}' if epochs is not None
                 else f'iteration {runner.iter} of max_iters={runner.max_iters}')
        checkpoint = runner.message_hub.get_info('last_ckpt') or _last_checkpoint(runner)
        length = '--epochs N' if epochs is not None else '--cfg-options train_cfg.max_iters=N'
        print_log(
            f'Nothing to train: the run in {runner.work_dir} already finished (resumed at '
            f'{where}). To train longer, start a new run from its weights with a fresh '
            f'schedule:\n    python tools/train.py {self.config_path} {length} --work-dir '
            f'NEW_WORK_DIR --cfg-options load_from={checkpoint}\n(resuming with a larger '
            'max_epochs would keep the finished schedule\'s final learning rate).',
            logger='current', level=logging.WARNING)


def _last_checkpoint(runner) -> str:
    try:
        with open(f'{runner.work_dir}/last_checkpoint') as f:
            return f.read().strip()
    except OSError:
        return 'CHECKPOINT'
