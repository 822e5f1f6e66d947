"""LoMaR (spec section 6) against independent references: image slices, loops, hand counts."""
import copy
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

import localmim_mm  # noqa: F401
from localmim_mm.models.utils.relpos_attention import (RelPosMultiheadAttention,
                                                       num_relative_positions,
                                                       relative_position_index)
from localmim_mm.models.utils.windows import crop_windows, num_masked_patches

from .conftest import REPO

TINY_LOMAR_CONFIG = osp.join(REPO, 'configs', 'lomar',
                             'lomar_vit-tiny-p8_1xb32-coslr-20e_sample.py')
SMALL_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def small_lomar(img_size=64, patch_size=8, num_windows=3, window_size=4, mask_ratio=0.8,
                **backbone):
    model = MODELS.build(dict(
        type='LoMaR',
        backbone=dict(type='LoMaRViT', arch=SMALL_ARCH, img_size=img_size,
                      patch_size=patch_size, num_windows=num_windows, window_size=window_size,
                      mask_ratio=mask_ratio, **backbone),
        head=dict(type='LoMaRHead', embed_dims=32, patch_size=patch_size)))
    model.init_weights()
    return model


def run_and_record(model, images):
    """One loss pass; records the encoder's pixel windows, the encoder input, the backbone
    outputs and the head's target windows."""
    seen = {}
    hooks = [
        model.backbone.patch_embed.register_forward_hook(
            lambda m, args, out: seen.update(embed_in=args[0], embed_out=out[0])),
        model.backbone.layers[0].register_forward_pre_hook(
            lambda m, args: seen.update(encoder_in=args[0])),
        model.backbone.register_forward_hook(
            lambda m, args, out: seen.update(latent=out[0], mask=out[1], offsets=out[2])),
    ]
    head_loss = model.head.loss

    def recording_loss(latent, windows, mask):
        seen['head_windows'] = windows
        return head_loss(latent, windows, mask)

    model.head.loss = recording_loss
    try:
        loss = model.loss(images, None)['loss']
    finally:
        del model.head.loss
        for h in hooks:
            h.remove()
    return loss, seen


# ----------------------------------------------------------------------------- windows
def test_each_window_is_a_slice_of_its_own_image_at_its_recorded_offset():
    torch.manual_seed(0)
    batch, k, w, p = 8, 4, 4, 8        # batch divisible by K: the release's defect case
    model = small_lomar(num_windows=k, window_size=w, patch_size=p)
    images = torch.randn(batch, 3, 64, 64)
    _, seen = run_and_record(model, images)
    offsets = seen['offsets']
    assert offsets.shape == (batch, k, 2)
    assert offsets.min() >= 0 and offsets.max() <= 64 // p - w
    encoder_windows = seen['embed_in'].view(batch, k, 3, w * p, w * p)
    for b in range(batch):
        for j in range(k):
            row, col = offsets[b, j].tolist()
            expected = images[b, :, row * p:(row + w) * p, col * p:(col + w) * p]
            assert torch.equal(encoder_windows[b, j], expected), (b, j)
            assert torch.equal(seen['head_windows'][b, j], expected), (b, j)


def test_crop_windows_on_a_non_square_image_matches_numpy_slices():
    rng = np.random.default_rng(1)
    images = rng.standard_normal((2, 3, 24, 40)).astype(np.float32)
    offsets = np.array([[[0, 0], [1, 3], [3, 7]], [[2, 1], [0, 7], [3, 0]]])
    crops = crop_windows(torch.from_numpy(images), torch.from_numpy(offsets), 3, 2).numpy()
    for b in range(2):
        for j in range(3):
            r, c = offsets[b, j] * 2
            np.testing.assert_array_equal(crops[b, j], images[b, :, r:r + 6, c:c + 6])


def test_offsets_are_drawn_per_image_unless_shared_by_configuration():
    torch.manual_seed(0)
    images = torch.randn(16, 3, 64, 64)
    per_image = small_lomar(num_windows=2).backbone(images)[2]
    assert len({tuple(o.flatten().tolist()) for o in per_image}) > 1
    shared = small_lomar(num_windows=2, window_sampling='batch').backbone(images)[2]
    assert (shared == shared[:1]).all()
    # every valid position per axis is reachable: grid 8, window 4 -> rows/cols 0..4
    many = small_lomar(num_windows=64).backbone(images)[2]
    assert set(many[..., 0].flatten().tolist()) == set(range(5))
    assert set(many[..., 1].flatten().tolist()) == set(range(5))


# ----------------------------------------------------------------------------- masking
@pytest.mark.parametrize('window_size,ratio,masked', [(7, 0.8, 39), (4, 0.8, 12), (7, 0.75, 36),
                                                       (4, 0.75, 12), (2, 0.5, 2)])
def test_masked_patches_per_window(window_size, ratio, masked):
    assert num_masked_patches(window_size, ratio) == masked


def test_every_window_has_exactly_its_masked_count_and_mask_tokens_fill_it():
    torch.manual_seed(0)
    # patch 4 on 28 px: a 7x7 grid, the paper's 7x7 window at ratio 0.8 -> 39 of 49
    model = small_lomar(img_size=28, patch_size=4, num_windows=4, window_size=7)
    _, seen = run_and_record(model, torch.randn(5, 3, 28, 28))
    mask = seen['mask']
    assert mask.shape == (5, 4, 7, 7)
    assert set(mask.unique().tolist()) == {0., 1.}
    assert (mask.sum(dim=(2, 3)) == 39).all()
    # different windows get different masks
    assert len({tuple(m.flatten().tolist()) for m in mask.flatten(0, 1)}) > 1
    tokens = seen['encoder_in'][:, 1:]                      # drop cls
    flat_mask = mask.flatten(0, 1).flatten(1).bool()
    mask_token = model.backbone.mask_token[0, 0]
    assert torch.equal(tokens[flat_mask], mask_token.expand(int(flat_mask.sum()), -1))
    assert torch.equal(tokens[~flat_mask], seen['embed_out'][~flat_mask])
    assert seen['latent'].shape == (5, 4, 1 + 49, 32)


# ----------------------------------------------------------------------------- loss
def reference_loss(pred, windows, mask, patch):
    """Loops: per-patch normalized pixels (p, p, C order), MSE averaged over masked patches."""
    total, count = 0., 0
    n_win, channels, side, _ = windows.shape
    cells = side // patch
    for n in range(n_win):
        for i in range(cells):
            for j in range(cells):
                if not mask[n, i, j]:
                    continue
                target = windows[n, :, i * patch:(i + 1) * patch, j * patch:(j + 1) * patch]
                target = target.transpose(1, 2, 0).reshape(-1)
                target = (target - target.mean()) / np.sqrt(target.var(ddof=1) + 1e-6)
                total += ((pred[n, i * cells + j] - target) ** 2).mean()
                count += 1
    return total / count


def test_head_loss_matches_loops_and_ignores_visible_predictions():
    torch.manual_seed(0)
    head = MODELS.build(dict(type='LoMaRHead', embed_dims=16, patch_size=2))
    head.init_weights()
    batch, k, w = 2, 3, 3
    latent = torch.randn(batch, k, 1 + w * w, 16)
    windows = torch.randn(batch, k, 3, w * 2, w * 2)
    mask = (torch.rand(batch, k, w, w) < 0.6).float()
    mask[..., 0, 0] = 1.
    loss = head.loss(latent, windows, mask)
    pred = head(latent).detach().flatten(0, 1).double().numpy()
    expected = reference_loss(pred, windows.flatten(0, 1).double().numpy(),
                              mask.flatten(0, 1).numpy(), 2)
    assert loss.item() == pytest.approx(expected, rel=1e-5)

    visible = torch.cat([torch.zeros(batch, k, 1, dtype=torch.bool),
                         mask.flatten(2) == 0], dim=2)
    changed = latent.clone()
    changed[visible] += 5 * torch.randn(int(visible.sum()), 16)
    assert head.loss(changed, windows, mask).item() == pytest.approx(loss.item(), rel=1e-6)
    changed[~visible & (torch.arange(1 + w * w) > 0)] += 1.
    assert head.loss(changed, windows, mask).item() != pytest.approx(loss.item(), rel=1e-3)


def test_loss_gradient_reaches_only_masked_patch_predictions():
    torch.manual_seed(0)
    model = small_lomar()
    preds = {}

    def keep_grad(module, args, out):
        out.retain_grad()
        preds['out'] = out

    model.head.predictor.register_forward_hook(keep_grad)
    loss, seen = run_and_record(model, torch.randn(3, 3, 64, 64))
    loss.backward()
    grad_norm = preds['out'].grad.abs().sum(-1)             # (B, K, L)
    masked = seen['mask'].flatten(2).bool()
    assert (grad_norm[~masked] == 0).all()
    assert (grad_norm[masked] > 0).all()


# ----------------------------------------------------------------------------- relative position
def test_relative_position_index_same_offset_same_entry():
    for grid, max_offset in [((4, 4), 3), ((3, 5), 2), ((6, 6), 2)]:
        index = relative_position_index(grid, max_offset)
        h, w = grid
        positions = [(y, x) for y in range(h) for x in range(w)]
        entry_of = {}
        for i, (yi, xi) in enumerate(positions):
            for j, (yj, xj) in enumerate(positions):
                offset = (min(max(yi - yj, -max_offset), max_offset),
                          min(max(xi - xj, -max_offset), max_offset))
                entry = int(index[1 + i, 1 + j])
                assert entry_of.setdefault(offset, entry) == entry, (grid, offset)
        # distinct (clipped) offsets -> distinct entries, all inside the patch part of the table
        assert len(set(entry_of.values())) == len(entry_of)
        side = 2 * max_offset + 1
        assert all(0 <= e < side * side for e in entry_of.values())
        # the cls token's three entries: its own, distinct from every patch entry
        cls_entries = {int(index[0, 1:].unique()), int(index[1:, 0].unique()), int(index[0, 0])}
        assert len(cls_entries) == 3 and not cls_entries & set(entry_of.values())
        assert max(cls_entries) < num_relative_positions(max_offset)
        # translation: the pair (a, b) and the pair shifted by one column read the same entry
        if w > 2:
            assert index[1 + 0, 1 + w + 1] == index[1 + 1, 1 + w + 2]


def test_relative_attention_matches_a_loop_over_offsets():
    torch.manual_seed(0)
    grid, m, heads, dims = (3, 3), 2, 2, 8
    attn = RelPosMultiheadAttention(dims, heads, m)
    attn.init_weights()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
    x = torch.randn(2, 10, dims)
    out = attn(x, relative_position_index(grid, m))

    table = attn.relative_position_bias_table.detach()
    side = 2 * m + 1
    pos = [None] + [(y, xx) for y in range(3) for xx in range(3)]

    def bias(i, j, h):
        if i == 0 and j == 0:
            return table[side * side + 2, h]
        if i == 0:
            return table[side * side, h]
        if j == 0:
            return table[side * side + 1, h]
        dy, dx = pos[i][0] - pos[j][0], pos[i][1] - pos[j][1]
        return table[(dy + m) * side + (dx + m), h]

    q, k, v = attn.qkv(x).detach().view(2, 10, 3, heads, dims // heads).unbind(2)
    expected = torch.zeros(2, 10, heads, dims // heads)
    for b in range(2):
        for h in range(heads):
            for i in range(10):
                logits = torch.stack([q[b, i, h] @ k[b, j, h] / (dims // heads) ** 0.5
                                      + bias(i, j, h) for j in range(10)])
                expected[b, i, h] = torch.softmax(logits, 0) @ v[b, :, h]
    expected = attn.proj(expected.reshape(2, 10, dims))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_no_absolute_position_embedding_is_used():
    """LoMaR's encoder sees position only through the relative bias: pos_embed has no effect."""
    model = small_lomar()
    images = torch.randn(2, 3, 64, 64)
    torch.manual_seed(0)
    windows = model.backbone(images)[0]
    full = model.extract_feat(images)[0]
    assert torch.count_nonzero(model.backbone.pos_embed) == 0
    assert not model.backbone.pos_embed.requires_grad
    with torch.no_grad():
        model.backbone.pos_embed.normal_()
    torch.manual_seed(0)
    torch.testing.assert_close(model.backbone(images)[0], windows, rtol=0, atol=0)
    torch.testing.assert_close(model.extract_feat(images)[0], full, rtol=0, atol=0)


# ----------------------------------------------------------------------------- training
def test_tiny_config_training_lowers_the_loss_on_sample_images():
    cfg = Config.fromfile(TINY_LOMAR_CONFIG)
    assert cfg.model.backbone.window_size == 4 and cfg.model.backbone.img_size == 64
    # a narrower, shallower encoder than the config's keeps the test short on a shared CPU
    cfg.model.backbone.arch.update(embed_dims=96, num_layers=2, num_heads=3,
                                   feedforward_channels=384)
    cfg.model.head.embed_dims = 96
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.update(batch_size=16, num_workers=0, persistent_workers=False)
    loader_cfg.dataset.data_root = osp.join(REPO, loader_cfg.dataset.data_root)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    init_default_scope(cfg.default_scope)
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    batches = [model.data_preprocessor(b, training=True)['inputs'] for _, b in
               zip(range(4), loader)]

    def held_out_loss():
        model.eval()
        torch.manual_seed(123)        # the same windows and masks each time
        with torch.no_grad():
            return float(np.mean([model.loss(x, None)['loss'].item() for x in batches]))

    before = held_out_loss()
    model.train()
    for step in range(24):
        optim.update_params(model.loss(batches[step % len(batches)], None)['loss'])
    after = held_out_loss()
    print(f'held-out loss {before:.4f} -> {after:.4f}')
    assert after < 0.9 * before, (before, after)


# ----------------------------------------------------------------------------- settings
@pytest.mark.parametrize('kwargs,named', [
    (dict(window_size=9), 'window_size=9'),
    (dict(mask_ratio=0.), 'mask_ratio=0.0'),
    (dict(mask_ratio=1.), 'mask_ratio=1.0'),
    (dict(mask_ratio=1.5), 'mask_ratio=1.5'),
    (dict(mask_ratio=0.05), 'mask_ratio=0.05'),      # 0 of 16 patches masked
    (dict(num_windows=0), 'num_windows=0'),
    (dict(window_size=0), 'window_size=0'),
    (dict(img_size=60), 'img_size=60'),
    (dict(window_sampling='per_batch'), "window_sampling='per_batch'"),
])
def test_bad_settings_raise_at_build_time_naming_the_value(kwargs, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        small_lomar(**kwargs)


def test_bad_inputs_and_mismatched_head_raise_clearly():
    model = small_lomar()
    with pytest.raises(ValueError, match='24x24 input'):
        model.backbone(torch.randn(1, 3, 24, 24))         # 3x3 grid < 4x4 window
    with pytest.raises(ValueError, match='60x64 px'):
        model.backbone(torch.randn(1, 3, 60, 64))
    with pytest.raises(ValueError, match='head.patch_size=16'):
        MODELS.build(dict(type='LoMaR',
                          backbone=dict(type='LoMaRViT', arch=SMALL_ARCH, img_size=64,
                                        patch_size=8, window_size=4),
                          head=dict(type='LoMaRHead', embed_dims=32, patch_size=16)))


# ----------------------------------------------------------------------------- transfer
LOMAR_ONLY_KEYS = {'mask_token', 'ln1.weight', 'ln1.bias'}


def test_encoder_keys_load_into_mmpretrain_vit(tmp_path):
    torch.manual_seed(0)
    pre = small_lomar()
    path = str(tmp_path / 'lomar.pth')
    torch.save({'state_dict': pre.state_dict()}, path)

    # the fine-tune config's backbone, at the small width
    ft_cfg = Config.fromfile(osp.join(REPO, 'configs', 'benchmarks', 'classification',
                                      'lomar_vit-base-p16_8xb128-coslr-100e_in1k.py'))
    backbone_cfg = ft_cfg.model.backbone
    assert backbone_cfg.type == 'VisionTransformer'
    assert backbone_cfg.init_cfg.type == 'LoudPretrained'
    backbone_cfg.update(arch=SMALL_ARCH, img_size=64, patch_size=8, drop_path_rate=0.)
    backbone_cfg.init_cfg.checkpoint = path
    vit = MODELS.build(backbone_cfg)
    assert isinstance(vit, VisionTransformer)
    vit.init_weights()

    src = pre.backbone.state_dict()
    dst = vit.state_dict()
    missing = set(dst) - set(src)
    unexpected = set(src) - set(dst)
    assert missing == {'ln2.weight', 'ln2.bias'}      # the new pooled-feature norm of the ViT
    rel_tables = {f'layers.{i}.attn.relative_position_bias_table' for i in range(2)}
    assert unexpected == LOMAR_ONLY_KEYS | rel_tables
    for key in set(src) & set(dst):
        assert torch.equal(dst[key], src[key]), key
    assert torch.count_nonzero(dst['pos_embed']) == 0


def test_plain_forward_encodes_the_whole_image():
    torch.manual_seed(0)
    model = small_lomar()
    feats = model.extract_feat(torch.randn(2, 3, 64, 64))
    assert len(feats) == 1 and feats[0].shape == (2, 1 + 64, 32)
    # at another resolution too (relative bias only; offsets beyond the window are clipped)
    assert model.extract_feat(torch.randn(2, 3, 96, 64))[0].shape == (2, 1 + 96, 32)
