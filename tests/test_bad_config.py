"""Bad settings raise at build time with a message naming the setting; bad checkpoints fail loudly.

Each row builds one registered module (or the whole tiny model) with one bad value. Rows of
modules that are not registered (yet) are skipped with a message.
"""
import copy
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

import localmim_mm  # noqa: F401
from localmim_mm.transfer import load_pretrained
from .reliability_helpers import REPO, TINY_VIT_CONFIG

TINY_SWIN_CONFIG = osp.join(REPO, 'configs', 'localmim',
                            'localmim_swin-tiny_1xb32-coslr-20e_sample.py')
TINY_ARCH = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)
VIT = dict(type='LocalMIMViT', img_size=32, patch_size=8, arch=TINY_ARCH, out_indices=[0, 1, 2, 3])
HEAD = dict(type='LocalMIMHead', in_channels=64, target_channels=27, scales=[4, 2, 1, 0.5],
            embed_dims=32, num_heads=2)
LOMAR = dict(type='LoMaRViT', arch=TINY_ARCH, img_size=32, patch_size=8, num_windows=2,
             window_size=2, mask_ratio=0.75)


def tiny_model(base=TINY_VIT_CONFIG, **changes):
    """The model of a tiny recipe with ``changes`` ('backbone.mask_ratio': 2, ...)."""
    model = copy.deepcopy(Config.fromfile(base).model)
    for key, value in changes.items():
        *path, last = key.split('.')
        target = model
        for part in path:
            target = target[part]
        target[last] = value
    return model


def with_(cfg, **changes):
    return dict(cfg, **changes)


# (id, config, exception, pattern the message must contain)
ROWS = [
    # LocalMIMViT
    ('vit-tap-beyond-depth', with_(VIT, out_indices=[0, 1, 4]), ValueError,
     r'tap index 4.*depth 4'),
    ('vit-negative-tap', with_(VIT, out_indices=[-1, 2]), ValueError, r'tap index -1'),
    ('vit-duplicate-taps', with_(VIT, out_indices=[0, 1, 1, 3]), ValueError, r'duplicate taps'),
    ('vit-decreasing-taps', with_(VIT, out_indices=[2, 1]), ValueError, r'out_indices=\[2, 1\]'),
    ('vit-img-not-divisible', with_(VIT, img_size=36), ValueError, r'img_size=36.*patch_size=8'),
    ('vit-mask-ratio-0', with_(VIT, mask_ratio=0.), ValueError, r'mask_ratio=0\.0'),
    ('vit-mask-ratio-1', with_(VIT, mask_ratio=1.), ValueError, r'mask_ratio=1\.0'),
    ('vit-mask-ratio-neg', with_(VIT, mask_ratio=-0.5), ValueError, r'mask_ratio=-0\.5'),
    ('vit-unknown-arch', with_(VIT, arch='huge-ish'), ValueError, r"arch 'huge-ish'"),
    # LocalMIMHead
    ('head-scale-not-power-of-two', with_(HEAD, scales=[3, 2, 1, 0.5]), ValueError,
     r'scale 3 .*power of two'),
    ('head-scale-zero', with_(HEAD, scales=[4, 2, 1, 0]), ValueError, r'scale 0 '),
    ('head-per-tap-length', with_(HEAD, in_channels=[64, 64, 64]), ValueError,
     r'in_channels=\[64, 64, 64\] has 3 entries'),
    ('head-loss-weights-length', with_(HEAD, loss_weights=[1, 1]), ValueError, r'loss_weights'),
    ('head-rescale-off-needs-scale-1', with_(HEAD, rescale=False), ValueError,
     r'rescale=False.*scales'),
    # target generators and neck
    ('hog-nbins-0', dict(type='MultiScaleHOGGenerator', nbins=0), ValueError, r'nbins=0'),
    ('hog-nbins-float', dict(type='MultiScaleHOGGenerator', nbins=4.5), ValueError, r'nbins=4\.5'),
    ('hog-cell-0', dict(type='MultiScaleHOGGenerator', cell_sizes=[0, 4]), ValueError,
     r'cell size 0'),
    ('pixel-cells-empty', dict(type='MultiScalePixelGenerator', cell_sizes=[]), ValueError,
     r'cell_sizes is empty'),
    ('neck-num-layers', dict(type='MultiLayerNeck', in_channels=[8, 8], num_layers=3),
     ValueError, r'num_layers=3'),
    ('unknown-type', dict(type='NoSuchGenerator'), KeyError, r'NoSuchGenerator'),
    # LocalMIM: the parts must agree
    ('localmim-unknown-target',
     tiny_model(**{'target_generator.type': 'NoSuchGenerator'}), KeyError, r'NoSuchGenerator'),
    ('localmim-scales-vs-taps', tiny_model(**{'head.scales': [4, 2, 1]}), ValueError,
     r'out_indices has 4 taps, head.scales 3'),
    ('localmim-cells-vs-taps', tiny_model(**{'target_generator.cell_sizes': [2, 4, 8]}),
     ValueError, r'cell_sizes 3'),
    ('localmim-cell-not-patch-over-scale',
     tiny_model(**{'target_generator.cell_sizes': [2, 4, 8, 8]}), ValueError,
     r'target cells are \[2, 4, 8, 16\] px, but target_generator.cell_sizes=\[2, 4, 8, 8\]'),
    ('localmim-pixel-cell-larger-than-image',
     tiny_model(**{'target_generator': dict(type='MultiScalePixelGenerator',
                                            cell_sizes=[2, 4, 8, 128])}),
     ValueError, r'cell_sizes\[3\]=128 px is larger than the image'),
    ('localmim-mask-ratio', tiny_model(**{'backbone.mask_ratio': 1.5}), ValueError,
     r'mask_ratio=1\.5'),
    # LocalMIMSwin (mask unit = the last stage's cell)
    ('swin-mask-unit', tiny_model(TINY_SWIN_CONFIG, **{'backbone.mask_unit': 16}), ValueError,
     r'mask_unit=16 px differs from the last-stage cell 32'),
    ('swin-img-not-divisible', tiny_model(TINY_SWIN_CONFIG, **{'backbone.img_size': 96}),
     ValueError, r'96'),
    ('swin-mask-ratio', tiny_model(TINY_SWIN_CONFIG, **{'backbone.mask_ratio': 0.}), ValueError,
     r'mask_ratio=0\.0'),
    ('swin-tap-beyond-stages', tiny_model(TINY_SWIN_CONFIG, **{'backbone.out_indices': [0, 4]}),
     ValueError, r'stage index 4'),
    # LoMaR
    ('lomar-img-not-divisible', with_(LOMAR, img_size=36), ValueError, r'img_size=36'),
    ('lomar-window-too-large', with_(LOMAR, window_size=5), ValueError, r'window_size=5'),
    ('lomar-num-windows-0', with_(LOMAR, num_windows=0), ValueError, r'num_windows=0'),
    ('lomar-mask-ratio', with_(LOMAR, mask_ratio=1.), ValueError, r'mask_ratio'),
]


def registered_types(cfg) -> list:
    types = [cfg['type']]
    for value in cfg.values():
        if isinstance(value, dict) and 'type' in value:
            types += registered_types(value)
    return types


@pytest.mark.parametrize('cfg,error,pattern', [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_setting_raises_naming_it(cfg, error, pattern):
    missing = [t for t in registered_types(cfg)
               if t != 'NoSuchGenerator' and MODELS.get(t) is None]
    if missing:
        pytest.skip(f'{missing} not registered yet')
    with pytest.raises(error, match=pattern):
        MODELS.build(cfg)


@pytest.mark.parametrize('row', ['vit', 'head', 'localmim', 'swin', 'lomar'])
def test_good_settings_build(row):
    """Every bad row differs from a config that builds (so the rows test one setting each)."""
    cfg = dict(vit=VIT, head=HEAD, localmim=tiny_model(), swin=tiny_model(TINY_SWIN_CONFIG),
               lomar=LOMAR)[row]
    MODELS.build(cfg)


# --- loading safety -------------------------------------------------------------------------

def publish_tool():
    path = osp.join(REPO, 'tools', 'model_converters', 'publish_model.py')
    if not osp.exists(path):
        pytest.skip('tools/model_converters/publish_model.py is not there yet')
    spec = importlib.util.spec_from_file_location('publish_model', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_published_checkpoint_loads_weights_only(tiny_localmim_checkpoint, tmp_path):
    final = publish_tool().publish(tiny_localmim_checkpoint, str(tmp_path / 'tiny.pth'))
    published = torch.load(final, map_location='cpu', weights_only=True)
    assert set(published) == {'state_dict', 'meta'}
    runner_ckpt = torch.load(tiny_localmim_checkpoint, map_location='cpu', weights_only=False)
    assert published['state_dict'].keys() == runner_ckpt['state_dict'].keys()
    for key, value in runner_ckpt['state_dict'].items():
        assert torch.equal(published['state_dict'][key], value), key


class NotATensor:
    pass


def test_weights_only_refuses_pickled_objects(tmp_path):
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': NotATensor()}, tmp_path / 'bad.pth')
    with pytest.raises(Exception, match='NotATensor'):
        torch.load(tmp_path / 'bad.pth', weights_only=True)


def save_backbone(cfg, path):
    torch.save({'state_dict': MODELS.build(cfg).state_dict()}, path)
    return str(path)


def test_wider_vit_into_narrower_vit_lists_the_mismatches(tmp_path):
    """A "ViT-L" (wider) file into a "ViT-B": every shape mismatch is listed, nothing loads."""
    wide = dict(VIT, arch=dict(TINY_ARCH, embed_dims=96, feedforward_channels=192))
    ckpt = save_backbone(wide, tmp_path / 'wide.pth')
    narrow = MODELS.build(VIT)
    before = {k: v.clone() for k, v in narrow.state_dict().items()}
    with pytest.raises(ValueError, match='have another shape') as err:
        load_pretrained(narrow, ckpt)
    total = len(narrow.state_dict())  # every tensor of a ViT has the width in its shape
    assert f'0 of {total} tensors match' in str(err.value)
    assert f'{total} have another shape' in str(err.value)
    assert 'another width: the file has 96 channels where the model has 64' in str(err.value)
    assert 'pos_embed (file [1, 17, 96], model [1, 17, 64])' in str(err.value)  # 4x4 + cls
    assert all(torch.equal(before[k], v) for k, v in narrow.state_dict().items())


def test_swin_into_vit_fails_naming_the_keys(tmp_path):
    swin = dict(type='mmpretrain.SwinTransformer', img_size=32, window_size=2,
                arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]))
    ckpt = save_backbone(swin, tmp_path / 'swin.pth')
    with pytest.raises(ValueError, match=r'patch_embed\.projection\.weight \(file \[16, 3, 4, '
                       r'4\], model \[64, 3, 8, 8\]\).*\n.*missing: cls_token'):
        load_pretrained(MODELS.build(VIT), ckpt)
    # Same patch embedding (patch 8, width 64): it would load, every block is then missing.
    swin['arch'] = dict(embed_dims=64, depths=[1, 1], num_heads=[1, 1])
    swin.update(patch_size=8, out_indices=(1, ))
    ckpt = save_backbone(swin, tmp_path / 'swin_p8.pth')
    with pytest.raises(ValueError, match=r'another architecture(.|\n)*missing: .*layers\.0\.'):
        load_pretrained(MODELS.build(VIT), ckpt)


def test_loud_pretrained_init_cfg_raises_on_the_wrong_architecture(tmp_path):
    """The same through a config: init_cfg=dict(type='LoudPretrained') at init_weights()."""
    wide = dict(VIT, arch=dict(TINY_ARCH, embed_dims=96, feedforward_channels=192))
    ckpt = save_backbone(wide, tmp_path / 'wide.pth')
    model = MODELS.build(dict(VIT, init_cfg=dict(type='LoudPretrained', checkpoint=ckpt)))
    with pytest.raises(ValueError, match='another width: the file has 96 channels'):
        model.init_weights()
