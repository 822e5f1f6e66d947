"""Every pre-training recipe trains one real step in the regime users run: mixed precision.

On GPUs the recipes use ``AmpOptimWrapper`` (float16 autocast around the forward, the backward
outside it). Here CPU autocast stands in for it (bfloat16 for every recipe at its real model size
and resolution, float16 too for the CPU-sized recipes): one ``model.train_step`` with the recipe's
optimizer settings must give finite per-layer losses within ``LOSS_RTOL`` of the float32 losses
on the same input and mask, and a finite gradient on every trainable parameter. Targets and
losses must come out in float32 whatever the autocast state.
"""
import copy
from typing import Dict

import pytest
import torch
from mmpretrain.registry import MODELS

import localmim_mm  # noqa: F401

from .amp_helpers import random_batch, recipe_optim_wrapper
from .recipes import Recipe, build_recipe_model, pretraining_recipes, recipe_id

# bfloat16 keeps 8 mantissa bits: per-layer losses of a freshly initialised model agree with
# float32 to ~0.2 % (measured); 1 % separates rounding from a wrong computation.
LOSS_RTOL = {torch.bfloat16: 1e-2, torch.float16: 5e-3}


RECIPES = pretraining_recipes()
TINY = [r for r in RECIPES if r.img_size <= 128]


def float32_losses(model, data) -> Dict[str, torch.Tensor]:
    with torch.no_grad():
        batch = model.data_preprocessor(copy.deepcopy(data), True)
        return model.loss(batch['inputs'], batch['data_samples'])


def check_autocast_step(recipe: Recipe, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    cfg, model = build_recipe_model(recipe.paths[0])
    data = random_batch(2, recipe.img_size)
    torch.manual_seed(1)  # the same masks in both passes
    reference = float32_losses(model, data)
    wrapper = recipe_optim_wrapper(model, cfg.optim_wrapper, dtype)
    torch.manual_seed(1)
    log_vars = model.train_step(data, wrapper)

    for name, expected in reference.items():
        got = log_vars[name]
        assert got.dtype == torch.float32, f'{name} reduced in {got.dtype}'
        assert torch.isfinite(got), f'{name} = {got}'
        torch.testing.assert_close(got, expected, rtol=LOSS_RTOL[dtype], atol=1e-4,
                                   msg=lambda m: f'{name}: {m}')
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert [n for n in trainable if n not in wrapper.grads] == [], 'parameters without gradient'
    assert [n for n, g in wrapper.grads.items() if not torch.isfinite(g).all()] == []


@pytest.mark.parametrize('recipe', RECIPES, ids=[recipe_id(r) for r in RECIPES])
def test_recipe_trains_one_bfloat16_autocast_step(recipe):
    check_autocast_step(recipe, torch.bfloat16)


@pytest.mark.parametrize('recipe', TINY, ids=[recipe_id(r) for r in TINY])
def test_cpu_recipe_trains_one_float16_autocast_step(recipe):
    check_autocast_step(recipe, torch.float16)


def test_every_pretraining_recipe_is_covered():
    """The grouping above cannot drop a recipe: every pre-training config of the repo is in
    exactly one tested group, and the known recipes are there."""
    listed = [p for r in RECIPES for p in r.paths]
    assert len(listed) == len(set(listed))
    for name in ('configs/localmim_vit-b.py', 'configs/localmim_swin-b.py',
                 'configs/localmim/localmim_vit-large-p16_16xb256-amp-coslr-800e_in1k.py',
                 'configs/localmim/localmim_swin-large-w14_16xb256-amp-coslr-800e_in1k.py',
                 'configs/localmim/localmim_vit-base-p16-pixel_8xb256-amp-coslr-1600e_in1k.py',
                 'configs/localmim/localmim_swin-base-w7-pixel_8xb256-amp-coslr-100e_in1k.py',
                 'configs/lomar/lomar_vit-base-p16_8xb512-coslr-400e_in1k.py',
                 'configs/localmim/localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py',
                 'configs/localmim/localmim_swin-tiny_1xb32-coslr-20e_sample.py',
                 'configs/lomar/lomar_vit-tiny-p8_1xb32-coslr-20e_sample.py'):
        assert name in listed


# ----------------------------------------------------------------------------- targets
TARGETS = [
    dict(type='MultiScaleHOGGenerator', nbins=9, cell_sizes=[4, 8, 16, 32]),
    dict(type='MultiScaleHOGGenerator', nbins=18, cell_sizes=[8, 16, 32, 32], hog_bias=True),
    dict(type='MultiScalePixelGenerator', cell_sizes=[4, 8, 16, 32]),
]


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('target', TARGETS, ids=['hog', 'hog-bias', 'pixel'])
def test_targets_are_float32_and_unchanged_by_autocast(target, dtype):
    generator = MODELS.build(target)
    img = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    half = img.to(dtype)
    expected, expected_half = generator(img), generator(half.float())
    with torch.autocast('cpu', dtype=dtype):
        got, got_half = generator(img), generator(half)
    for e, g in zip(expected + expected_half, got + got_half):
        assert g.dtype == torch.float32
        assert torch.equal(g, e)
