"""Every config resolves to the recipe it had before the config clean-up, and builds its model.

The reference is tests/data/recipe_values_57ded36.json, recorded by
tests/data/make_recipe_values.py from the configs as they stood at commit 57ded36, before the
shared bases and before the derived values (a cosine's ``T_max``) were left to mmengine. Each
config is resolved again and compared with it: optimiser (lr, betas, weight decay, layer decay,
paramwise settings), batch per GPU, epochs / iterations, every scheduler with mmengine's
defaults filled in and as mmengine builds it (warm-up length and start factor, cosine length
and floor), the model's recipe fields (drop path, mask ratio, taps, ...), the parameter count of
the model built from the config, and a digest of each whole section a run consumes.

A deliberate recipe change records a new snapshot (``python -m tests.data.make_recipe_values
tests/data/recipe_values_<commit>.json``) and points SNAPSHOT at it.
"""
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim.scheduler import CosineAnnealingLR

import localmim_mm  # noqa: F401
from .data.make_recipe_values import REPO, config_paths, recipe_values

SNAPSHOT = osp.join(REPO, 'tests', 'data', 'recipe_values_57ded36.json')
with open(SNAPSHOT) as f:
    RECORDED = json.load(f)


def differences(now, then, where=''):
    """``[(path, now, then)]`` where the two JSON values differ (floats to 1e-12 relative: the
    same lr written ``blr * 2048 / 256`` or ``1.6e-3`` may differ in its last bit)."""
    if isinstance(now, dict) and isinstance(then, dict):
        out = []
        for key in sorted(set(now) | set(then)):
            out += differences(now.get(key, '<absent>'), then.get(key, '<absent>'),
                               f'{where}.{key}')
        return out
    if isinstance(now, list) and isinstance(then, list) and len(now) == len(then):
        return [d for i, (a, b) in enumerate(zip(now, then))
                for d in differences(a, b, f'{where}[{i}]')]
    if isinstance(now, float) and isinstance(then, (int, float)) and \
            not isinstance(then, bool) and math.isclose(now, then, rel_tol=1e-12):
        return []
    if type(now) is not type(then) or now != then:
        return [(where, now, then)]
    return []


def test_the_snapshot_lists_every_config():
    assert config_paths() == sorted(RECORDED), (
        'a config was added, renamed or removed: record a new snapshot')


@pytest.mark.parametrize('path', sorted(RECORDED))
def test_config_resolves_to_the_recorded_recipe(path):
    """Also builds the config's model (weights on the meta device) to count its parameters."""
    now = recipe_values(Config.fromfile(osp.join(REPO, path)))
    diffs = differences(now, RECORDED[path])
    assert not diffs, f'{path} changed:\n' + '\n'.join(
        f'  {where}: now {a!r}, recorded {b!r}' for where, a, b in diffs)


def test_the_comparison_sees_a_changed_value():
    path = 'configs/localmim/localmim_vit-base-p16_8xb256-amp-coslr-100e_in1k.py'
    cfg = Config.fromfile(osp.join(REPO, path))
    cfg.param_scheduler[1].begin = 11  # one epoch more warm-up before the cosine
    where = {w for w, _, _ in differences(recipe_values(cfg), RECORDED[path])}
    assert {'.param_scheduler[1].begin', '.param_scheduler_iters[1].begin',
            '.digests.param_scheduler'} <= where


@pytest.mark.parametrize('begin, end, epoch_length', [(2, 20, 15), (40, 400, 3), (10, 100, 1)])
def test_a_cosine_without_t_max_anneals_exactly_as_one_that_spells_it(begin, end, epoch_length):
    """mmengine takes ``T_max = end - begin`` (after ``convert_to_iter_based`` scales both), so
    the recipes leave it out: every iteration's lr is the same as with ``T_max`` written."""

    def lrs(**t_max):
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([param], lr=1.6e-3)
        scheduler = CosineAnnealingLR.build_iter_from_epoch(
            optimizer, eta_min=1e-6, by_epoch=True, begin=begin, end=end,
            epoch_length=epoch_length, **t_max)
        out = []
        for i in range(end * epoch_length):
            if i >= begin * epoch_length:
                out.append(optimizer.param_groups[0]['lr'])
            optimizer.step()
            scheduler.step()
        return out

    derived, spelled = lrs(), lrs(T_max=end - begin)
    assert derived == spelled
    # and it is a half cosine from the peak to the floor over the phase (independent formula)
    span = (end - begin) * epoch_length
    assert derived[0] == pytest.approx(1.6e-3)
    assert derived[span // 2] == pytest.approx(
        1e-6 + (1.6e-3 - 1e-6) * (1 + math.cos(math.pi * (span // 2) / span)) / 2)
