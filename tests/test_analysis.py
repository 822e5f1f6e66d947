"""Analysis tools: NMI, attention extraction, HOG glyphs, pixel de-normalisation, end to end."""
import importlib.util
import json
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from localmim_mm.analysis import (AttentionRecorder, ImageInput, attention_nmi, build_model,
                                  encoder_attentions, patch_attention, patchify, render_hog_glyphs,
                                  unpatchify)
from localmim_mm.analysis.hog_glyphs import cell_orientation_histograms
from localmim_mm.analysis.reconstruction import _denormalise_cells
from localmim_mm.models.target_generators import (MultiScaleHOGGenerator,
                                                  MultiScalePixelGenerator)

from .conftest import REPO, TINY_VIT_CONFIG, train

TOOLS = osp.join(REPO, 'tools', 'analysis_tools')
SAMPLE_IMAGE = osp.join(REPO, 'data', 'sample_cifar', 'val', 'cat', '0001.jpg')


# ---------------------------------------------------------------- NMI
def test_nmi_of_uniform_attention_is_zero():
    n = 16
    attn = torch.full((2, 3, n, n), 1. / n)
    assert torch.allclose(attention_nmi(attn), torch.zeros(2, 3), atol=1e-6)


def test_nmi_of_one_hot_query_dependent_attention_is_one():
    n = 16
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    attn = torch.zeros(n, n)
    attn[torch.arange(n), perm] = 1.
    assert attention_nmi(attn).item() == pytest.approx(1., abs=1e-6)


def test_nmi_matches_entropy_reference():
    """I(Q;K) = H(Q) + H(K) - H(Q,K), computed with numpy loops on a random attention."""
    rng = np.random.default_rng(0)
    n = 6
    logits = rng.normal(size=(n, n)) * 2
    attn = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    joint = attn / n
    h_q = math.log(n)
    h_k = -sum(p * math.log(p) for p in joint.sum(0))
    h_qk = -sum(p * math.log(p) for p in joint.ravel())
    expected = (h_q + h_k - h_qk) / math.sqrt(h_q * h_k)
    assert attention_nmi(torch.tensor(attn)).item() == pytest.approx(expected, rel=1e-5)


def test_nmi_rejects_non_square_attention():
    with pytest.raises(ValueError, match='square'):
        attention_nmi(torch.ones(4, 5))


# ---------------------------------------------------------------- attention extraction
def test_recorded_attention_reproduces_the_module_output():
    """softmax(q k^T / sqrt(d)) @ v through the module's proj equals the module's own output."""
    from mmpretrain.models.utils import MultiheadAttention
    torch.manual_seed(0)
    module = MultiheadAttention(embed_dims=24, num_heads=3).eval()
    x = torch.randn(2, 7, 24)
    with AttentionRecorder({'a': module}) as recorder:
        out = module(x)
    attn = recorder.maps['a']
    assert attn.shape == (2, 3, 7, 7)
    v = module.qkv(x).reshape(2, 7, 3, 3, 8).permute(2, 0, 3, 1, 4)[2]
    mixed = (attn @ v).transpose(1, 2).reshape(2, 7, 24)
    assert torch.allclose(module.proj(mixed), out, atol=1e-5)


def test_patch_attention_drops_cls_and_renormalises():
    attn = torch.softmax(torch.randn(1, 2, 5, 5), -1)
    patches = patch_attention(attn, 1)
    assert patches.shape == (1, 2, 4, 4)
    expected = attn[0, 1, 3, 1:] / attn[0, 1, 3, 1:].sum()
    assert torch.allclose(patches[0, 1, 2], expected)


# ---------------------------------------------------------------- HOG glyphs
def _edge_image(kind: str, size: int = 32) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')
    bright = {'vertical': x >= size // 2, 'horizontal': y >= size // 2,
              'slash': x + y >= size}[kind]  # 'slash': an edge running like '/'
    return bright.float().expand(3, -1, -1).unsqueeze(0) * 2 - 1


def _glyph(kind: str, nbins: int = 9, cell_px: int = 33) -> np.ndarray:
    """The glyph of the one 32-px cell of an edge image (through the real HOG target)."""
    hog = MultiScaleHOGGenerator(nbins=nbins, cell_sizes=[32])
    cells = hog(_edge_image(kind))[0][0]
    return render_hog_glyphs(cell_orientation_histograms(cells, nbins, (1, 1)), cell_px)


def test_vertical_edge_energy_is_on_the_vertical_orientation():
    nbins = 9
    hog = MultiScaleHOGGenerator(nbins=nbins, cell_sizes=[32])
    hist = hog(_edge_image('vertical'))[0][0].view(3, nbins)
    # gradient along x: atan2(gx, 0) = +-pi/2, bin floor(nbins / 2)
    assert hist.argmax(dim=1).tolist() == [nbins // 2] * 3
    glyph = _glyph('vertical', nbins)
    c = glyph.shape[0] // 2
    # a vertical line through the centre: bright above and below it, dark left and right
    assert glyph[3, c] > 0.9 and glyph[-4, c] > 0.9
    assert glyph[c, 3] < 0.05 and glyph[c, -4] < 0.05
    assert glyph[:, c].sum() > 10 * glyph[c, :c - 2].sum()


def _line_angle(glyph: np.ndarray) -> float:
    """Angle (degrees, 0 = horizontal, counter-clockwise as seen on screen) of the principal axis
    of the bright pixels, from their second moments."""
    rows, cols = np.indices(glyph.shape)
    x, y = cols + .5 - glyph.shape[1] / 2, glyph.shape[0] / 2 - (rows + .5)  # y up on screen
    w = glyph / glyph.sum()
    cxx, cyy, cxy = (w * x * x).sum(), (w * y * y).sum(), (w * x * y).sum()
    return math.degrees(0.5 * math.atan2(2 * cxy, cxx - cyy)) % 180


def test_horizontal_edge_glyph_is_horizontal():
    """Horizontal is a bin edge with 9 bins (bin 0 covers [0, 20) degrees), so the glyph is drawn
    at the bin centre, within half a bin of horizontal."""
    glyph = _glyph('horizontal')
    angle = _line_angle(glyph)
    assert min(angle, 180 - angle) <= 10 + 1
    c = glyph.shape[0] // 2
    assert glyph[3, c] < 0.05 and glyph[-4, c] < 0.05
    assert _line_angle(_glyph('vertical')) == pytest.approx(90, abs=1)


def test_diagonal_edge_glyph_follows_the_edge():
    """An edge like '/' (from bottom-left to top-right) is drawn as '/'."""
    glyph = _glyph('slash')
    s = glyph.shape[0]
    top_right, bottom_left = glyph[:s // 3, 2 * s // 3:], glyph[2 * s // 3:, :s // 3]
    top_left, bottom_right = glyph[:s // 3, :s // 3], glyph[2 * s // 3:, 2 * s // 3:]
    assert min(top_right.sum(), bottom_left.sum()) > 5 * max(top_left.sum(), bottom_right.sum())
    assert _line_angle(glyph) == pytest.approx(45, abs=10 + 1)  # bin 2 of 9: [40, 60) degrees


def test_glyph_renderer_rejects_tiny_cells():
    with pytest.raises(ValueError, match='cell_px'):
        render_hog_glyphs(np.ones((1, 1, 9)), 2)


# ---------------------------------------------------------------- pixel targets
def test_patchify_matches_the_pixel_generator_layout():
    img = torch.randn(1, 3, 16, 16)
    target = MultiScalePixelGenerator(cell_sizes=[4], norm_pix=False)(img)[0][0]
    assert torch.equal(patchify(img[0], 4), target)
    assert torch.equal(unpatchify(target, 4, (16, 16)), img[0])


def test_norm_pix_target_denormalises_to_the_image():
    img = torch.randn(3, 16, 16)
    generator = MultiScalePixelGenerator(cell_sizes=[8], norm_pix=True)
    target = generator(img[None])[0][0]
    restored = _denormalise_cells(target, patchify(img, 8), generator)
    assert torch.allclose(unpatchify(restored, 8, (16, 16)), img, atol=1e-4)


# ---------------------------------------------------------------- end to end
PIXEL_CONFIG = f"""
_base_ = [{TINY_VIT_CONFIG!r}]
model = dict(
    head=dict(target_channels=[12, 48, 192, 768]),
    target_generator=dict(_delete_=True, type='MultiScalePixelGenerator',
                          cell_sizes=[2, 4, 8, 16], norm_pix=True))
"""

MAE_CONFIG = """
_base_ = 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=96, num_layers=4, num_heads=3,
                            feedforward_channels=384), img_size=64, patch_size=8),
    neck=dict(num_patches=64, embed_dim=96, patch_size=8, decoder_embed_dim=64,
              decoder_depth=1, decoder_num_heads=4),
    head=dict(patch_size=8))
"""


@pytest.fixture(scope='module')
def pixel_checkpoint(tmp_path_factory):
    """A LocalMIM checkpoint with pixel targets, one epoch on 64 sample images."""
    work_dir = tmp_path_factory.mktemp('pixel')
    config = work_dir / 'pixel_cfg.py'
    config.write_text(PIXEL_CONFIG)
    train(str(config), work_dir, '--cfg-options', 'train_cfg.max_epochs=1',
          'train_dataloader.dataset.indices=64', 'train_dataloader.num_workers=0',
          'train_dataloader.persistent_workers=False')
    return str(config), str(work_dir / 'epoch_1.pth')


@pytest.fixture(scope='module')
def mae_checkpoint(tmp_path_factory):
    """A randomly initialised tiny mmpretrain MAE (config + state dict), built from mmpretrain's
    own MAE config."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    work_dir = tmp_path_factory.mktemp('mae')
    config = work_dir / 'mae_tiny.py'
    config.write_text(MAE_CONFIG)
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    path = work_dir / 'mae.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return str(config), str(path)


@pytest.fixture(scope='module')
def backbone_only_checkpoint(tiny_localmim_checkpoint, tmp_path_factory):
    state = torch.load(tiny_localmim_checkpoint, map_location='cpu',
                       weights_only=True)['state_dict']
    path = tmp_path_factory.mktemp('published') / 'backbone.pth'
    torch.save({'state_dict': {k: v for k, v in state.items() if k.startswith('backbone.')}}, path)
    return str(path)


def _check_png(path, min_side=200):
    assert osp.isfile(path), f'{path} was not written'
    image = np.asarray(Image.open(path).convert('RGB')).astype(np.float32)
    assert min(image.shape[:2]) >= min_side, f'{path} is only {image.shape[:2]}'
    assert image.std() > 10, f'{path} looks blank (pixel std {image.std():.1f})'


def _tool(name, *args):
    """Run a tool's ``main()`` in this process (saves a fresh torch / mmengine import per run)."""
    spec = importlib.util.spec_from_file_location(f'analysis_tool_{name[:-3]}',
                                                  osp.join(TOOLS, name))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    argv = sys.argv
    sys.argv = [name, *map(str, args)]
    try:
        tool.main()
    finally:
        sys.argv = argv


@pytest.mark.parametrize('target', ['hog', 'pixel'])
def test_reconstruction_viewer_writes_one_png_per_layer(target, tiny_localmim_checkpoint,
                                                        pixel_checkpoint, tmp_path):
    config, ckpt = ((TINY_VIT_CONFIG, tiny_localmim_checkpoint) if target == 'hog'
                    else pixel_checkpoint)
    _tool('visualize_reconstruction.py', config, ckpt, '--images', SAMPLE_IMAGE,
          '--out-dir', tmp_path, '--seed', 3)
    for tap in ('block1', 'block3', 'block5', 'block7'):
        _check_png(osp.join(tmp_path, f'cat_0001_{tap}.png'))


def test_reconstruction_viewer_refuses_a_backbone_only_checkpoint(backbone_only_checkpoint,
                                                                  tmp_path):
    """From the command line: a clear message, no PNG."""
    proc = subprocess.run(
        [sys.executable, osp.join(TOOLS, 'visualize_reconstruction.py'), TINY_VIT_CONFIG,
         backbone_only_checkpoint, '--images', SAMPLE_IMAGE, '--out-dir', str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode != 0
    assert 'needs a full pre-training checkpoint' in proc.stderr
    assert 'only backbone.* keys' in proc.stderr
    assert not list(tmp_path.iterdir())


def test_layer_nmi_plots_several_checkpoints(tiny_localmim_checkpoint, mae_checkpoint,
                                             backbone_only_checkpoint, tmp_path):
    mae_config, mae_ckpt = mae_checkpoint
    _tool('layer_nmi.py', TINY_VIT_CONFIG, tiny_localmim_checkpoint, '--label', 'localmim',
          '--compare', mae_config, mae_ckpt, 'mae',
          '--compare', TINY_VIT_CONFIG, backbone_only_checkpoint, 'backbone-only',
          '--images', SAMPLE_IMAGE, osp.join(REPO, 'data', 'sample_cifar', 'val', 'dog'),
          '--max-images', 2,
          '--out-dir', tmp_path)
    _check_png(osp.join(tmp_path, 'nmi.png'))
    with open(osp.join(tmp_path, 'nmi.json')) as f:
        result = json.load(f)
    assert len(result['images']) == 2
    models = {m['label']: m for m in result['models']}
    assert models['localmim']['encoder']['layers'] == list(range(8))
    assert models['mae']['encoder']['layers'] == list(range(4))
    assert sorted(models['localmim']['decoders']) == [
        'decoder_block1', 'decoder_block3', 'decoder_block5', 'decoder_block7']
    assert list(models['mae']['decoders']) == ['decoder.0']
    assert models['backbone-only']['decoders'] == {}  # decoders not in the file: not measured
    for m in models.values():
        values = m['encoder']['nmi'] + [d['nmi'] for d in m['decoders'].values()]
        assert all(0 <= v <= 1 for v in values)
        assert len(m['encoder']['nmi_per_head'][0]) == 3


def test_attention_maps_one_png_per_point(mae_checkpoint, tmp_path):
    config, ckpt = mae_checkpoint
    _tool('attention_maps.py', config, ckpt, '--images', SAMPLE_IMAGE, '--points', '3,4',
          '31,31', '--layers', 0, 3, '--out-dir', tmp_path)
    for name in ('cat_0001_x3_y4.png', 'cat_0001_x31_y31.png'):
        _check_png(osp.join(tmp_path, name))


def test_attention_maps_on_a_localmim_checkpoint(tiny_localmim_checkpoint, tmp_path):
    _tool('attention_maps.py', TINY_VIT_CONFIG, tiny_localmim_checkpoint, '--images',
          SAMPLE_IMAGE, '--points', '16,16', '--head', 2, '--out-dir', tmp_path)
    _check_png(osp.join(tmp_path, 'cat_0001_x16_y16.png'))


def test_points_outside_the_image_and_layers_outside_the_depth_are_refused(mae_checkpoint):
    config, ckpt = mae_checkpoint
    model, loaded = build_model(config, ckpt)
    assert {'backbone', 'neck'} <= loaded
    image = ImageInput(SAMPLE_IMAGE, (64, 64), model.data_preprocessor)
    with pytest.raises(ValueError, match=r'point \(x=32, y=5\) lies outside the 32x32 image'):
        image.to_pixel(32, 5)
    with pytest.raises(ValueError, match='layer 4 is outside the encoder depth 4'):
        encoder_attentions(model, image.tensor(), [0, 4])
    assert image.to_pixel(31, 0) == (62, 0)


# ---------------------------------------------------------------- LoMaR checkpoints
LOMAR_CONFIG = osp.join(REPO, 'configs', 'lomar', 'lomar_vit-tiny-p8_1xb32-coslr-20e_sample.py')


@pytest.fixture(scope='module')
def lomar_checkpoint(tmp_path_factory):
    """A tiny LoMaR runner checkpoint: 2 iterations of 8 sample images."""
    work_dir = tmp_path_factory.mktemp('lomar')
    train(LOMAR_CONFIG, work_dir, '--cfg-options', 'train_cfg.max_epochs=1',
          'train_dataloader.dataset.indices=16', 'train_dataloader.batch_size=8',
          'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False')
    return str(work_dir / 'epoch_1.pth')


def test_recorded_lomar_attention_adds_the_relative_position_bias():
    """softmax(q k^T / sqrt(d) + bias) @ v through proj equals RelPosMultiheadAttention's output,
    with a bias large enough that leaving it out would show."""
    from localmim_mm.models.utils.relpos_attention import (RelPosMultiheadAttention,
                                                           relative_position_index)
    torch.manual_seed(0)
    module = RelPosMultiheadAttention(embed_dims=24, num_heads=3, max_offset=2).eval()
    torch.nn.init.normal_(module.relative_position_bias_table, std=3.)
    index = relative_position_index((3, 3), 2)
    x = torch.randn(2, 10, 24)
    with AttentionRecorder({'a': module}) as recorder:
        out = module(x, index)
    attn = recorder.maps['a']
    v = module.qkv(x).reshape(2, 10, 3, 3, 8).permute(2, 0, 3, 1, 4)[2]
    mixed = (attn @ v).transpose(1, 2).reshape(2, 10, 24)
    assert torch.allclose(module.proj(mixed), out, atol=1e-5)
    q, k = module.qkv(x).reshape(2, 10, 3, 3, 8).permute(2, 0, 3, 1, 4)[:2]
    without_bias = torch.softmax(q @ k.transpose(-2, -1) * 8 ** -0.5, -1)
    assert not torch.allclose(attn, without_bias, atol=1e-2)


def test_layer_nmi_and_attention_maps_read_a_lomar_checkpoint(lomar_checkpoint, tmp_path):
    _tool('layer_nmi.py', LOMAR_CONFIG, lomar_checkpoint, '--label', 'lomar', '--images',
          SAMPLE_IMAGE, '--out-dir', tmp_path / 'nmi')
    with open(tmp_path / 'nmi' / 'nmi.json') as f:
        (model, ) = json.load(f)['models']
    assert model['encoder']['layers'] == list(range(8))
    assert all(0 <= v <= 1 for v in model['encoder']['nmi'])
    assert model['decoders'] == {}  # LoMaR's head is one linear layer: no decoder attention
    _tool('attention_maps.py', LOMAR_CONFIG, lomar_checkpoint, '--images', SAMPLE_IMAGE,
          '--points', '16,16', '--layers', 0, 7, '--out-dir', tmp_path / 'maps')
    _check_png(osp.join(tmp_path, 'maps', 'cat_0001_x16_y16.png'))


def test_reconstruction_viewer_refuses_lomar_naming_what_is_missing(lomar_checkpoint, tmp_path):
    proc = subprocess.run(
        [sys.executable, osp.join(TOOLS, 'visualize_reconstruction.py'), LOMAR_CONFIG,
         lomar_checkpoint, '--images', SAMPLE_IMAGE, '--out-dir', str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode != 0
    assert ('LoMaR lacks: neck, per-layer decoders (LocalMIMHead), target generator'
            in proc.stderr)
    assert 'lacks 0' not in proc.stderr
    assert not list(tmp_path.iterdir())
