"""``tools/train.py --epochs N``: the whole lr schedule follows the run length; ``--resume`` of a
finished run says so."""
import glob
import json
import math
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config

from localmim_mm.runtime.cli.schedule import fit_schedule_to_run, set_epochs

from .conftest import TINY_VIT_CONFIG, train

BASE_LR, MIN_LR, START_FACTOR = 1.5e-3 * 32 / 256, 1e-6, 1e-3  # the tiny recipe
RECIPE_EPOCHS, RECIPE_WARMUP = 20, 2


def test_every_boundary_is_scaled_by_the_same_factor():
    cfg = Config.fromfile(TINY_VIT_CONFIG)
    cfg.param_scheduler.append(dict(type='MultiStepLR', milestones=[8, 16], by_epoch=True,
                                    begin=0, end=20))  # plain epoch-based: rounded
    assert set_epochs(cfg, 5) == 0.25
    warmup, cosine, steps = cfg.param_scheduler
    assert cfg.train_cfg.max_epochs == 5
    assert (warmup.begin, warmup.end) == (0, 0.5)  # 2 of 20 epochs -> 0.5 of 5
    assert (cosine.begin, cosine.end) == (0.5, 5)
    assert cosine.get('T_max') is None  # derived by mmengine from the converted boundaries
    assert cosine.eta_min == MIN_LR and warmup.start_factor == START_FACTOR
    assert steps['milestones'] == [2, 4] and (steps['begin'], steps['end']) == (0, 5)


def test_lengthening_scales_up_and_other_t_max_is_scaled():
    cfg = Config.fromfile(TINY_VIT_CONFIG)
    cfg.param_scheduler[1].T_max = 30  # not end - begin: kept as a scaled value
    set_epochs(cfg, 40)
    assert cfg.param_scheduler[0].end == 4 and cfg.param_scheduler[1].T_max == 60


@pytest.mark.parametrize('epochs, overrides, message', [
    (0, None, 'whole number of epochs'),
    (5, {'train_cfg.max_epochs': 7}, 'both set the run length'),
])
def test_bad_requests_are_refused(epochs, overrides, message):
    cfg = Config.fromfile(TINY_VIT_CONFIG)
    with pytest.raises(SystemExit, match=message):
        set_epochs(cfg, epochs, overrides)


def test_iteration_based_loop_is_refused():
    cfg = Config.fromfile(TINY_VIT_CONFIG)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=100)
    with pytest.raises(SystemExit, match='epoch-based training loop'):
        set_epochs(cfg, 5)


def test_a_phase_of_fewer_than_two_iterations_is_dropped():
    """8 iterations per epoch: a warm-up of 0.2 epochs is iteration 0..1 (one iteration, mmengine
    converts with int()) and is dropped; 0.25 epochs is 0..2 and stays; the cosine stays."""
    def phases(warmup_end):
        return [dict(type='LinearLR', by_epoch=True, begin=0, end=warmup_end,
                     convert_to_iter_based=True),
                dict(type='CosineAnnealingLR', by_epoch=True, begin=warmup_end, end=1,
                     convert_to_iter_based=True)]
    for warmup_end, kept in ((0.2, ['CosineAnnealingLR']),
                             (0.25, ['LinearLR', 'CosineAnnealingLR'])):
        runner = SimpleNamespace(param_schedulers=phases(warmup_end), max_epochs=1, max_iters=8,
                                 train_dataloader=[None] * 8)
        fit_schedule_to_run(runner)
        assert [p['type'] for p in runner.param_schedulers] == kept


def expected_lr(i: int, total: int, warmup: int) -> float:
    """The lr of iteration ``i`` (0-based): linear warm-up from START_FACTOR over ``warmup``
    iterations (mmengine reaches the full lr on the warm-up's last iteration), then a half
    cosine from BASE_LR to MIN_LR over the remaining ones."""
    if i < warmup:
        return BASE_LR * (START_FACTOR + (1 - START_FACTOR) * i / (warmup - 1))
    t, span = i - warmup, total - warmup
    return MIN_LR + (BASE_LR - MIN_LR) * (1 + math.cos(math.pi * t / span)) / 2


def test_shortened_run_ends_at_min_lr_and_resuming_it_says_finished(tmp_path):
    epochs, iters_per_epoch = 4, 8  # 64 images, batch 8
    work_dir = tmp_path / 'run'
    options = ['train_dataloader.batch_size=8', 'train_dataloader.dataset.indices=64',
               'default_hooks.logger.interval=1', 'train_dataloader.num_workers=0',
               'train_dataloader.persistent_workers=False']
    train(TINY_VIT_CONFIG, work_dir, '--epochs', str(epochs), '--cfg-options', *options)

    total = epochs * iters_per_epoch
    warmup = int(RECIPE_WARMUP * epochs / RECIPE_EPOCHS * iters_per_epoch)  # 0.4 epochs -> 3
    scalars = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))[0]
    lrs = {r['step']: r['lr'] for r in map(json.loads, open(scalars)) if 'lr' in r}
    assert sorted(lrs) == list(range(1, total + 1))
    for step, lr in lrs.items():
        assert lr == pytest.approx(expected_lr(step - 1, total, warmup), rel=1e-6), step
    # The last iteration trains one cosine step above the minimum, as the full recipe does
    # (mmengine assigns eta_min itself only at `end`); max_epochs=4 alone would end at 95 %.
    assert lrs[total] - MIN_LR < 0.01 * (BASE_LR - MIN_LR)

    resumed = train(TINY_VIT_CONFIG, work_dir, '--resume', '--epochs', str(epochs),
                    '--cfg-options', *options)
    said = resumed.stdout + resumed.stderr
    assert 'Nothing to train' in said and f'epoch {epochs} of max_epochs={epochs}' in said
    assert f'load_from={work_dir}/epoch_{epochs}.pth' in said
