"""A freshly built model of every pre-training recipe starts like the authors' release.

The release's rules, written out here independently of the code (its ``_init_weights`` and
``initialize_weights`` of ``models_mim.py``, ViT and Swin, as MAE):
* every ``nn.Linear``: xavier-uniform, i.e. U(-a, a) with a = sqrt(6 / (fan_in + fan_out)),
  bias 0;
* every LayerNorm: weight 1, bias 0;
* the patch embedding conv: xavier-uniform on its (out, in * k * k) flattened weight; its bias
  and every other conv (the ViT decoders' deconvs and final 1x1 conv) keep PyTorch's default
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (fan_in as PyTorch counts it);
* cls and mask tokens: normal(0, 0.02); relative position tables: (truncated) normal(0, 0.02);
* the ViT encoder's fixed position table: MAE's ``get_2d_sincos_pos_embed`` (raster order, the
  first half of the channels encoding the column);
* HOG bias (ViT-L, Swin): one (2,) pair per scale, U(-1/3, 1/3).
Every parameter of every recipe must be claimed by exactly one rule.
"""
import math

import numpy as np
import pytest
import torch
from mmpretrain.models.utils import LayerNorm2d
from torch import nn

import localmim_mm  # noqa: F401

from .recipes import build_recipe_model, pretraining_recipes, recipe_id
from .release_reference import mae_sincos_table

RECIPES = pretraining_recipes()


def uniform_bound_ok(w: torch.Tensor, bound: float) -> bool:
    """All values in [-bound, bound] and, for large tensors, the std of U(-bound, bound)."""
    if w.abs().max() > bound * (1 + 1e-6):
        return False
    return w.numel() < 2048 or abs(w.float().std() / (bound / math.sqrt(3)) - 1) < 0.1


def normal_std_ok(w: torch.Tensor, std: float) -> bool:
    """Sample std and mean of normal(0, std) within 5 standard errors."""
    n = w.numel()
    return (abs(w.float().std() / std - 1) < 5 / math.sqrt(2 * n)
            and abs(w.float().mean()) < 5 * std / math.sqrt(n))


def default_conv_bound(weight: torch.Tensor) -> float:
    fan_in = weight.shape[1] * weight[0][0].numel()  # PyTorch's count, also for deconvs
    return 1 / math.sqrt(fan_in)


def xavier_bound(weight: torch.Tensor) -> float:
    fan_out, fan_in = weight.shape[0], weight[0].numel()
    return math.sqrt(6 / (fan_in + fan_out))


def check_initialisation(model: nn.Module) -> dict:
    """{parameter or buffer name: rule} for everything checked; raises on a broken rule."""
    claimed = {}

    def claim(name, rule, ok):
        assert name not in claimed, f'{name} claimed by {claimed[name]} and {rule}'
        assert ok, f'{name} breaks the release rule: {rule}'
        claimed[name] = rule

    patch_embeds = {n for n, m in model.named_modules() if n.endswith('patch_embed.projection')}
    for mod_name, module in model.named_modules():
        prefix = f'{mod_name}.' if mod_name else ''
        if isinstance(module, nn.Linear):
            claim(prefix + 'weight', 'xavier-uniform Linear',
                  uniform_bound_ok(module.weight, xavier_bound(module.weight)))
            if module.bias is not None:
                claim(prefix + 'bias', 'zero Linear bias', torch.all(module.bias == 0))
        elif isinstance(module, (nn.LayerNorm, LayerNorm2d)):
            claim(prefix + 'weight', 'LayerNorm weight 1', torch.all(module.weight == 1))
            claim(prefix + 'bias', 'LayerNorm bias 0', torch.all(module.bias == 0))
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            bound = default_conv_bound(module.weight)
            if mod_name in patch_embeds:
                claim(prefix + 'weight', 'patch embedding xavier on (out, in*k*k)',
                      uniform_bound_ok(module.weight, xavier_bound(module.weight)))
            else:
                claim(prefix + 'weight', 'default conv init',
                      uniform_bound_ok(module.weight, bound) and module.weight.abs().sum() > 0)
            claim(prefix + 'bias', 'default conv bias',
                  module.bias.abs().max() <= bound and module.bias.abs().sum() > 0)
    for name, p in model.named_parameters():
        if name.endswith(('cls_token', 'mask_token')):
            claim(name, 'token normal(0.02)', normal_std_ok(p, 0.02))
        elif name.endswith('relative_position_bias_table'):
            claim(name, 'relative position table normal(0.02)', normal_std_ok(p, 0.02))
        elif name == 'backbone.pos_embed' and type(model.backbone).__name__ == 'LocalMIMViT':
            h, w = model.backbone.patch_resolution
            expected = torch.from_numpy(mae_sincos_table(p.shape[-1], h, w)).float()
            claim(name, 'fixed MAE sin-cos table', torch.allclose(p[0], expected, atol=1e-6)
                  and not p.requires_grad)
        elif name == 'backbone.pos_embed':  # LoMaR: no absolute position, kept at zero
            claim(name, 'LoMaR: zero, frozen', torch.all(p == 0) and not p.requires_grad)
    for name, buf in model.named_buffers():
        if name.endswith('hog_bias'):
            scales = len(model.target_generator.cell_sizes)
            claim(name, 'HOG bias U(-1/3, 1/3) per scale',
                  buf.shape == (scales, 2) and buf.abs().max() <= 1 / 3)
    unclaimed = [n for n, _ in model.named_parameters() if n not in claimed]
    assert unclaimed == [], f'parameters no release rule covers: {unclaimed}'
    return claimed


@pytest.mark.parametrize('recipe', RECIPES, ids=[recipe_id(r) for r in RECIPES])
def test_fresh_model_initialises_like_the_release(recipe):
    torch.manual_seed(0)
    _, model = build_recipe_model(recipe.paths[0])
    claimed = check_initialisation(model)
    rules = set(claimed.values())
    assert 'xavier-uniform Linear' in rules and 'LayerNorm weight 1' in rules
    if type(model).__name__ == 'LocalMIM' and model.head.decoders[0].rescale:
        assert 'default conv init' in rules  # the ViT decoders' deconvs and 1x1 convs


def test_the_rules_catch_pytorch_default_init():
    """The check fails on what the modules did before (PyTorch's default Linear init)."""
    layer = nn.Linear(768, 2304)
    with pytest.raises(AssertionError, match='xavier'):
        check_initialisation(nn.Sequential(layer))


# ----------------------------------------------------------------------------- decoders
def test_decoder_layout_follows_the_release():
    """Names, order and eps of the release's ``MAE_Decoder`` (ViT) and ``ViT_Decoder`` (Swin),
    so that its decoders load by name and compute the same."""
    _, vit = build_recipe_model('configs/localmim_vit-b.py')
    pred = [type(m).__name__ for m in vit.head.decoders[0].pred]
    assert pred == ['ConvTranspose2d', 'LayerNorm2d', 'GELU', 'ConvTranspose2d', 'Conv2d']
    assert [type(m).__name__ for m in vit.head.decoders[3].pred] == ['AvgPool2d', 'Conv2d']
    assert vit.head.decoders[0].pred[1].eps == 1e-6
    norms = [m for m in vit.head.modules() if isinstance(m, (nn.LayerNorm, LayerNorm2d))]
    assert {m.eps for m in norms} == {1e-6}
    _, swin = build_recipe_model('configs/localmim_swin-b.py')
    assert all(isinstance(d.pred, nn.Linear) for d in swin.head.decoders)
    assert [d.pred.out_features for d in swin.head.decoders] == [54] * 4


@pytest.mark.parametrize('grid,cls_token', [((14, 14), True), ((7, 7), False), ((4, 6), False)])
def test_decoder_position_table_is_the_releases(grid, cls_token):
    """The decoders add MAE's table (not mmpretrain's transposed one): a release decoder loaded
    by name sees the positions it was trained with."""
    _, model = build_recipe_model('configs/localmim_vit-b.py' if cls_token else
                                  'configs/localmim_swin-b.py')
    decoder = model.head.decoders[1]
    table = decoder.position_embedding(grid, torch.device('cpu'))[0].numpy()
    np.testing.assert_allclose(table, mae_sincos_table(table.shape[-1], *grid, cls_token),
                               atol=1e-6)
