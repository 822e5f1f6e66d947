"""LocalMIMSwin: masked window attention, the visible-token encoder, checkpoints, training."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmpretrain.models import SwinTransformer
from mmpretrain.models.utils.attention import ShiftWindowMSA, WindowMSA
from mmpretrain.registry import MODELS

import localmim_mm  # noqa: F401
from localmim_mm.models.backbones.localmim_swin import LocalMIMSwin
from localmim_mm.models.backbones.localmim_swin import (_gather_cells, cell_token_coords,
                                                       merge_cells)
from localmim_mm.models.utils.masked_window_attention import (build_window_layout,
                                                              masked_window_attention)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_CFG = osp.join(REPO, 'configs/localmim/localmim_swin-tiny_1xb32-coslr-20e_sample.py')
TINY_ARCH = dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Tiny models: one thread avoids oversubscribing a busy CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_swin(**kwargs):
    kwargs = {**dict(arch=TINY_ARCH, img_size=128, window_size=4), **kwargs}
    model = LocalMIMSwin(**kwargs)
    model.init_weights()
    model.eval()  # SwinTransformer.train() returns None: no chaining
    return model


def plain_swin(model, **kwargs):
    """A stock SwinTransformer with the same weights, tapping after each PatchMerging."""
    ref = SwinTransformer(arch=TINY_ARCH, img_size=kwargs.get('img_size', 128),
                          window_size=kwargs.get('window_size', 4), out_indices=(0, 1, 2, 3),
                          out_after_downsample=True, norm_cfg=None, drop_path_rate=0.)
    state = {k: v for k, v in model.state_dict().items() if k != 'mask_token'}
    ref.load_state_dict(state, strict=True)
    ref.eval()
    return ref


def cell_mask(batch, grid, masked_per_sample, seed=0):
    g = torch.Generator().manual_seed(seed)
    cells = grid * grid
    mask = torch.zeros(batch, cells)
    for b in range(batch):
        mask[b, torch.randperm(cells, generator=g)[:masked_per_sample]] = 1
    return mask.view(batch, grid, grid)


# ----------------------------------------------------------------------------- attention
def reference_masked_window_attention(w_msa, x, visible, window, shift):
    """mmpretrain's ShiftWindowMSA on the full map with masked keys excluded.

    x: (B, H, W, C) full map, visible: (B, H, W) bool. Returns (B, H, W, C); only visible
    positions are meaningful.
    """
    b, h, w, c = x.shape
    if shift:
        x = torch.roll(x, (-shift, -shift), dims=(1, 2))
        visible = torch.roll(visible, (-shift, -shift), dims=(1, 2))
    windows = ShiftWindowMSA.window_partition(x, window).view(-1, window * window, c)
    keys = ShiftWindowMSA.window_partition(visible[..., None].float(), window)
    keys = keys.view(-1, 1, window * window)
    mask = (1 - keys) * -1e9  # (B * nW, 1, T): masked keys never attended
    region = ShiftWindowMSA.get_attn_mask((h, w), window, shift)
    if region is not None:
        mask = mask + region.repeat(b, 1, 1)
    out = w_msa(windows, mask=mask.expand(-1, window * window, -1))
    out = ShiftWindowMSA.window_reverse(out.view(-1, window, window, c), h, w, window)
    if shift:
        out = torch.roll(out, (shift, shift), dims=(1, 2))
    return out


@pytest.mark.parametrize('hw,window,shift,cell', [((16, 16), 4, 0, 4), ((16, 16), 4, 2, 4),
                                                  ((14, 14), 7, 3, 2), ((28, 28), 7, 3, 4),
                                                  ((12, 18), 6, 3, 3)])
@pytest.mark.parametrize('mode', ['windows', 'tokens'])
def test_window_attention_matches_masked_full_map_attention(hw, window, shift, cell, mode):
    torch.manual_seed(0)
    batch, dims, heads = 3, 16, 2
    w_msa = WindowMSA(dims, (window, window), heads).eval()
    torch.nn.init.normal_(w_msa.relative_position_bias_table, std=1.)
    grid = (hw[0] // cell, hw[1] // cell)
    masked = int(0.6 * grid[0] * grid[1])
    cells = torch.zeros(batch, grid[0] * grid[1])
    for b in range(batch):
        cells[b, torch.randperm(grid[0] * grid[1])[:masked]] = 1
    cells = cells.view(batch, *grid)
    visible = (cells.repeat_interleave(cell, 1).repeat_interleave(cell, 2) == 0)
    x = torch.randn(batch, *hw, dims)

    coords = torch.stack(torch.meshgrid(torch.arange(hw[0]), torch.arange(hw[1]),
                                        indexing='ij'), -1)
    coords = torch.stack([coords[visible[b]] for b in range(batch)])  # (B, N, 2) raster
    tokens = torch.stack([x[b][visible[b]] for b in range(batch)])
    layout = build_window_layout(coords, hw, window, shift, mode)
    assert layout.mode == mode
    with torch.no_grad():
        out = masked_window_attention(w_msa, tokens, layout)
        ref = reference_masked_window_attention(w_msa, x, visible, window, shift)
    ref = torch.stack([ref[b][visible[b]] for b in range(batch)])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('mode', ['windows', 'tokens'])
def test_window_attention_gradients_match(mode):
    torch.manual_seed(1)
    hw, window, shift = (8, 8), 4, 2
    w_msa = WindowMSA(8, (window, window), 2)
    visible = cell_mask(2, 4, 10).repeat_interleave(2, 1).repeat_interleave(2, 2) == 0
    x = torch.randn(2, *hw, 8, requires_grad=True)
    coords = torch.stack(torch.meshgrid(torch.arange(8), torch.arange(8), indexing='ij'), -1)
    coords = torch.stack([coords[visible[b]] for b in range(2)])
    tokens = torch.stack([x[b][visible[b]] for b in range(2)])
    out = masked_window_attention(w_msa, tokens,
                                  build_window_layout(coords, hw, window, shift, mode))
    grads = torch.autograd.grad(out.square().sum(), [x, w_msa.relative_position_bias_table])
    ref = reference_masked_window_attention(w_msa, x, visible, window, shift)
    ref = torch.stack([ref[b][visible[b]] for b in range(2)])
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, w_msa.relative_position_bias_table])
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)


def test_layout_mode_follows_the_attended_pairs():
    """'auto' attends the fewer pairs: Swin-B at 224 px with 12 of 49 cells visible has 768
    visible tokens on stage 1's 56 x 56 map (768^2 pairs > 64 windows x 49^2 slot pairs:
    padded windows) and 48 on stage 3's 14 x 14 map (48^2 < 4 x 49^2: token pairs)."""
    cells = torch.arange(12).view(1, 12) * 4
    stage1 = cell_token_coords(cells, 7, 8)
    stage3 = cell_token_coords(cells, 7, 2)
    assert build_window_layout(stage1, (56, 56), 7, 3).mode == 'windows'
    assert build_window_layout(stage3, (14, 14), 7, 3).mode == 'tokens'
    with pytest.raises(ValueError, match="mode='packed'"):
        build_window_layout(stage3, (14, 14), 7, 3, mode='packed')


@pytest.mark.parametrize('mode', ['windows', 'tokens'])
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_empty_windows_give_no_nan_under_autocast(dtype, mode):
    """Whole windows without a visible token (every slot masked) must not turn into NaN in
    the outputs or the gradients under CPU autocast, in either half-precision dtype."""
    torch.manual_seed(2)
    hw, window = (16, 16), 4
    w_msa = WindowMSA(16, (window, window), 2)
    coords = torch.tensor([[[0, 0], [0, 1], [1, 0], [5, 5]]])  # 14 of 16 windows empty
    tokens = torch.randn(1, 4, 16, requires_grad=True)
    with torch.autocast('cpu', dtype=dtype):
        out = masked_window_attention(w_msa, tokens,
                                      build_window_layout(coords, hw, window, 2, mode))
    out.float().square().sum().backward()
    assert torch.isfinite(out).all()
    assert torch.isfinite(tokens.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in w_msa.parameters() if p.grad is not None)


def test_visible_token_coordinates_are_true_after_every_merge():
    """The coordinates the encoder attaches to its visible tokens (cell by cell) are the tokens'
    true map positions at every stage. A map whose values ARE the positions is gathered and
    merged by the encoder's own ops; each merged token must carry its 2x2 group's position.
    (The release lists raster-order coordinates for cell-ordered tokens from stage 2 on.)"""
    grid, side, batch = (4, 4), 8, 2
    mask = cell_mask(batch, 4, 11, seed=3)
    visible = torch.argsort(mask.flatten(1), dim=1, stable=True)[:, :16 - 11]
    rows, cols = torch.meshgrid(torch.arange(32.), torch.arange(32.), indexing='ij')
    position_map = torch.stack([rows, cols], -1).expand(batch, -1, -1, -1)
    tokens = _gather_cells(position_map, visible, grid[1], side)

    class Average:  # PatchMerging stand-in: mean of the 2x2 group's 4 position vectors
        norm = None

        @staticmethod
        def reduction(x):
            return x.view(*x.shape[:-1], 2, 4).mean(-1)  # channel-major: c * 4 + offset

    for stage in range(3):
        coords = cell_token_coords(visible, grid[1], side).float()
        torch.testing.assert_close(tokens, coords, msg=f'stage {stage + 1}')
        tokens = (merge_cells(Average, tokens, side) - 0.5) / 2  # the merged 2x2 group's position
        side //= 2
    assert torch.equal(cell_token_coords(visible, grid[1], side).float(), tokens)
    # an independent listing of the stage-2 positions of sample 0, cell by cell
    cells = visible[0].tolist()
    expected = [(r // 4 * 4 + i, r % 4 * 4 + j) for r in cells for i in range(4) for j in range(4)]
    assert cell_token_coords(visible, grid[1], 4)[0].tolist() == [list(e) for e in expected]


# ----------------------------------------------------------------------------- encoder
def reference_masked_swin(model, x, mask):
    """Independent masked encoder: the stock stages on the full map with masked keys excluded
    from every window attention; PatchMerging on the full map (a masked cell covers whole 2x2
    groups, so visible outputs never mix with masked positions)."""
    x, hw = model.patch_embed(x)
    feats = []
    for i, stage in enumerate(model.stages):
        side = hw[0] // mask.shape[1]
        visible = mask.repeat_interleave(side, 1).repeat_interleave(side, 2) == 0
        for block in stage.blocks:
            window = block.attn.window_size
            shift = block.attn.shift_size if min(hw) > window else 0
            y = block.norm1(x).view(x.shape[0], *hw, -1)
            y = reference_masked_window_attention(block.attn.w_msa, y, visible, window, shift)
            x = x + y.flatten(1, 2)
            x = block.ffn(block.norm2(x), identity=x)
        if stage.downsample is not None:
            x, hw = stage.downsample(x, hw)
        side = hw[0] // mask.shape[1]
        visible = (mask.repeat_interleave(side, 1).repeat_interleave(side, 2) == 0).flatten(1)
        feats.append(x[visible].view(x.shape[0], -1, x.shape[-1]))
    return feats


@pytest.mark.parametrize('img_size,window', [(128, 4), (224, 7)])
@pytest.mark.parametrize('mode', ['visible', 'mask_token'])
def test_zero_masking_equals_swin_transformer(img_size, window, mode):
    torch.manual_seed(0)
    model = tiny_swin(img_size=img_size, window_size=window, encoder_mode=mode)
    ref = plain_swin(model, img_size=img_size, window_size=window)
    x = torch.randn(2, 3, img_size, img_size)
    grid = img_size // 32
    with torch.no_grad():
        feats, mask, ids_restore = model(x, mask=torch.zeros(2, grid, grid))
        expected = ref(x)
    assert len(feats) == 4
    for f, e in zip(feats, expected):
        torch.testing.assert_close(f, e.flatten(2).transpose(1, 2), atol=1e-5, rtol=1e-4)
    assert ids_restore.tolist() == [list(range(grid * grid))] * 2


@pytest.mark.parametrize('img_size,window', [(128, 4), (224, 7)])
def test_visible_encoder_matches_masked_reference(img_size, window):
    torch.manual_seed(0)
    model = tiny_swin(img_size=img_size, window_size=window)
    grid = img_size // 32
    mask = cell_mask(3, grid, round(0.75 * grid * grid))
    x = torch.randn(3, 3, img_size, img_size)
    with torch.no_grad():
        feats, out_mask, _ = model(x, mask=mask)
        expected = reference_masked_swin(model, x, mask)
    assert torch.equal(out_mask, mask)
    for f, e in zip(feats, expected):
        torch.testing.assert_close(f, e, atol=1e-5, rtol=1e-4)


def test_masked_patches_never_influence_visible_features():
    torch.manual_seed(0)
    model = tiny_swin(img_size=224, window_size=7)
    mask = cell_mask(2, 7, 37)
    x = torch.randn(2, 3, 224, 224)
    r, c = [int(v) for v in torch.nonzero(mask[0])[0]]
    y = x.clone()
    y[0, :, 32 * r:32 * r + 32, 32 * c:32 * c + 32] += 5 * torch.randn(3, 32, 32)
    vr, vc = [int(v) for v in torch.nonzero(mask[0] == 0)[0]]
    z = x.clone()
    z[0, :, 32 * vr:32 * vr + 4, 32 * vc:32 * vc + 4] += 5.
    with torch.no_grad():
        base, _, _ = model(x, mask=mask)
        masked_change, _, _ = model(y, mask=mask)
        visible_change, _, _ = model(z, mask=mask)
    for a, b in zip(base, masked_change):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    # a visible patch does change sample 0 (the test can fail), and never sample 1
    assert not torch.allclose(base[0][0], visible_change[0][0])
    for a, b in zip(base, visible_change):
        torch.testing.assert_close(a[1], b[1], atol=0, rtol=0)


def test_random_mask_counts_and_sharing():
    model = tiny_swin(img_size=224, window_size=7)
    torch.manual_seed(0)
    x = torch.randn(4, 3, 224, 224)
    with torch.no_grad():
        feats, mask, ids_restore = model(x, mask=True)
    assert mask.shape == (4, 7, 7)
    assert mask.flatten(1).sum(1).tolist() == [37.] * 4  # round(0.75 * 49)
    assert not all(torch.equal(mask[0], m) for m in mask[1:])  # per sample by default
    assert [tuple(f.shape) for f in feats] == [(4, 12 * 16, 64), (4, 12 * 4, 128),
                                               (4, 12, 256), (4, 12, 256)]
    # ids_restore un-shuffles [visible, masked]: the masked flags come back in raster order
    flags = torch.sort(mask.flatten(1), dim=1, stable=True)[0]
    assert torch.equal(torch.gather(flags, 1, ids_restore), mask.flatten(1))
    shared = tiny_swin(img_size=224, window_size=7, mask_shared=True)
    with torch.no_grad():
        _, mask, _ = shared(x, mask=True)
    assert all(torch.equal(mask[0], m) for m in mask[1:])
    assert mask[0].sum() == 37
    assert model.tap_names == ['stage1', 'stage2', 'stage3', 'stage4']


def test_plain_forward_is_swin_transformer():
    model = tiny_swin()
    ref = plain_swin(model)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        for a, b in zip(model(x, mask=None), ref(x)):
            torch.testing.assert_close(a, b)


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_loads_into_mmpretrain_and_mmdet_swin(tmp_path):
    mmdet_backbones = pytest.importorskip('mmdet.models.backbones')
    cfg = Config.fromfile(TINY_CFG)
    algo = MODELS.build(cfg.model)
    algo.init_weights()
    state = {k: v.clone() for k, v in algo.state_dict().items()}
    path = str(tmp_path / 'localmim_swin_tiny.pth')
    torch.save({'state_dict': state, 'meta': {}}, path)
    encoder = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}

    pretrain = SwinTransformer(arch=TINY_ARCH, img_size=128, window_size=4,
                               out_indices=(0, 1, 2, 3), drop_path_rate=0.,
                               init_cfg=dict(type='Pretrained', checkpoint=path,
                                             prefix='backbone.'))
    pretrain.init_weights()
    # The class itself, not a registry build: an earlier test may leave the default scope at
    # mmpretrain, whose registry would then resolve 'SwinTransformer' to its own class.
    det = mmdet_backbones.SwinTransformer(
        embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], window_size=4,
        drop_path_rate=0., convert_weights=False,
        init_cfg=ConfigDict(type='Pretrained', checkpoint=path))
    det.init_weights()
    for name, target in [('mmpretrain', pretrain.state_dict()), ('mmdet', det.state_dict())]:
        assert set(encoder) <= set(target), f'{name}: keys missing in the target'
        assert sorted(set(target) - set(encoder)) == [f'norm{i}.{p}' for i in range(4)
                                                      for p in ('bias', 'weight')]
        for k, v in encoder.items():
            assert torch.equal(target[k], v), f'{name}: {k} not loaded'
    # Same keys and same semantics: both give the same stage outputs (before PatchMerging,
    # with their fresh output norms) for the loaded weights. mmdet shifts windows even on a map
    # equal to the window (mmpretrain, like the original Swin, does not): compare on an input
    # where every stage map is larger than the window.
    pretrain.eval(), det.eval()
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        for a, b in zip(pretrain(x), det(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize('kwargs,match', [
    (dict(mask_ratio=0.), 'mask_ratio'),
    (dict(mask_ratio=1.), 'mask_ratio'),
    (dict(encoder_mode='dense'), 'encoder_mode'),
    (dict(mask_unit=16), 'mask_unit=16'),
    (dict(img_size=112), 'not divisible by the 32-px mask unit'),
    (dict(img_size=224, window_size=5), 'not a multiple of its window 5'),
    (dict(img_size=224, window_size=14), 'stage 4 map 7x7'),
    (dict(out_indices=[2, 1]), 'strictly increasing'),
    (dict(out_indices=[0, 4]), 'outside'),
])
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LocalMIMSwin(**{**dict(arch=TINY_ARCH, img_size=128, window_size=4), **kwargs})


def test_tap_strides_checked_against_target_cells():
    assert tiny_swin().tap_strides == [8, 16, 32, 32]
    assert tiny_swin(out_indices=[1, 3]).tap_strides == [16, 32]
    cfg = Config.fromfile(TINY_CFG)
    cfg.model.target_generator.cell_sizes = [4, 16, 32, 32]
    with pytest.raises(ValueError, match='cell_sizes'):
        MODELS.build(cfg.model)


def test_bad_inputs_raise():
    model = tiny_swin()
    with pytest.raises(ValueError, match='160x160'):
        model(torch.randn(1, 3, 160, 160), mask=True)  # stage map 40: not a multiple of 4
    with pytest.raises(ValueError, match='same number of cells'):
        model(torch.randn(2, 3, 128, 128), mask=cell_mask(2, 4, 12) * torch.tensor(
            [1., 0.]).view(2, 1, 1))
    with pytest.raises(ValueError, match='mask of shape'):
        model(torch.randn(2, 3, 128, 128), mask=torch.zeros(2, 8, 8))


# ----------------------------------------------------------------------------- configs
def test_swin_configs_build_and_run_one_step():
    paths = sorted(glob.glob(osp.join(REPO, 'configs/localmim/localmim_swin-*.py')))
    assert len(paths) >= 6
    for path in paths:
        cfg = Config.fromfile(path)
        assert cfg.model.backbone.type == 'LocalMIMSwin'
        assert cfg.model.backbone.mask_shared is False
        keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
        assert keys['relative_position_bias_table'] == dict(decay_mult=0.)
    base = Config.fromfile(osp.join(REPO, 'configs/localmim_swin-b.py'))
    assert base.optim_wrapper.optimizer.lr == pytest.approx(8e-4)
    assert base.param_scheduler[1].eta_min == 0.
    large = Config.fromfile(osp.join(
        REPO, 'configs/localmim/localmim_swin-large-w14_16xb256-amp-coslr-800e_in1k.py'))
    assert large.optim_wrapper.optimizer.lr == pytest.approx(1.6e-3)
    # the Swin-B HOG and pixel recipes: one loss step with the real model at 224 px
    for name in ('localmim_swin-base-w7_8xb256-amp-coslr-100e_in1k.py',
                 'localmim_swin-base-w7-pixel_8xb256-amp-coslr-100e_in1k.py'):
        cfg = Config.fromfile(osp.join(REPO, 'configs/localmim', name))
        algo = MODELS.build(cfg.model)
        losses = algo.loss(torch.randn(1, 3, 224, 224), None)
        assert list(losses) == ['loss_stage1', 'loss_stage2', 'loss_stage3', 'loss_stage4']
        assert all(torch.isfinite(v) for v in losses.values())


# ----------------------------------------------------------------------------- training
def load_sample_images(size, count):
    from PIL import Image
    files = sorted(glob.glob(osp.join(REPO, 'data/sample_cifar/train/*/*.jpg')))[:count]
    if len(files) < count:
        pytest.skip('data/sample_cifar is missing')
    imgs = [np.asarray(Image.open(f).convert('RGB').resize((size, size), Image.BICUBIC))
            for f in files]
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()


def test_a_few_dozen_steps_lower_the_loss():
    torch.manual_seed(0)
    cfg = Config.fromfile(TINY_CFG)
    algo = MODELS.build(cfg.model)
    algo.init_weights()
    algo.train()
    imgs = load_sample_images(128, 8)
    mean = torch.tensor(cfg.model.data_preprocessor.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.model.data_preprocessor.std).view(1, 3, 1, 1)
    inputs = (imgs - mean) / std
    optim = torch.optim.AdamW(algo.parameters(), lr=2e-3, betas=(0.9, 0.95))
    history = []
    for _ in range(24):
        loss = sum(algo.loss(inputs, None).values())
        optim.zero_grad()
        loss.backward()
        optim.step()
        history.append(loss.item())
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    assert last < 0.8 * first, f'loss did not fall: {history}'
