"""LiveReconstructionHook draws the viewer's panels through the visualizer, ViT and Swin, HOG and
pixel targets, with fixed masks, leaving random states and module modes as they were."""
import copy
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.visualization import Visualizer
from PIL import Image

from localmim_mm.analysis.images import ImageInput
from localmim_mm.analysis.reconstruction import reconstruct
from localmim_mm.analysis.reconstruction_figure import reconstruction_figure
from localmim_mm.engine import LiveReconstructionHook

from .conftest import REPO, TINY_VIT_CONFIG

TINY_SWIN_CONFIG = osp.join(REPO, 'configs', 'localmim',
                            'localmim_swin-tiny_1xb32-coslr-20e_sample.py')
IMAGE = osp.join(REPO, 'data', 'sample_cifar', 'val', 'cat', '0001.jpg')
PIXEL = dict(model=dict(head=dict(target_channels=[12, 48, 192, 768]),
                        target_generator=dict(_delete_=True, type='MultiScalePixelGenerator',
                                              cell_sizes=[2, 4, 8, 16], norm_pix=True)))
CASES = {'vit-hog': (TINY_VIT_CONFIG, {}), 'vit-pixel': (TINY_VIT_CONFIG, PIXEL),
         'swin-hog': (TINY_SWIN_CONFIG, {})}


def build_model(case):
    config, overrides = CASES[case]
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(copy.deepcopy(overrides))  # merging consumes `_delete_`
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.train()


def stub_runner(model, save_dir, name):
    visualizer = Visualizer.get_instance(name, vis_backends=[dict(type='LocalVisBackend')],
                                         save_dir=str(save_dir))
    return SimpleNamespace(model=model, visualizer=visualizer, iter=0, epoch=0, max_epochs=5,
                           log_dir=str(save_dir))


def read_png(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert('RGB')).astype(np.int16)


@pytest.mark.parametrize('case', list(CASES))
def test_draws_fixed_mask_figures_and_touches_nothing(case, tmp_path):
    model = build_model(case)
    if hasattr(model.backbone, 'mask_generator'):  # as RNGStateHook sets it during training
        model.backbone.mask_generator = torch.Generator().manual_seed(11)
    runner = stub_runner(model, tmp_path, f'live_recon_{case}')
    hook = LiveReconstructionHook(images=IMAGE, initial=True, seed=3)
    rng_before = torch.get_rng_state()
    generator_before = getattr(model.backbone, 'mask_generator', None)
    generator_state = generator_before.get_state() if generator_before is not None else None

    hook.before_train(runner)  # initial drawing, step 0
    torch.rand(7)  # training draws random numbers between two drawings
    hook.after_train_epoch(runner)  # epoch 1
    with torch.no_grad():  # the model changes: so must the prediction panels
        for decoder in model.head.decoders:  # the release's last 1x1 conv (ViT) / Linear (Swin)
            last = decoder.pred[-1] if isinstance(decoder.pred, torch.nn.Sequential) \
                else decoder.pred
            last.bias.add_(0.5)
    runner.epoch = 1
    hook.after_train_epoch(runner)  # epoch 2

    out = tmp_path / 'vis_data' / 'vis_image'
    first, same, changed = (read_png(out / f'reconstruction_cat_0001_{s}.png') for s in (0, 1, 2))
    assert first.shape[0] > 4 * 150 and first.std() > 20  # 4 layer rows, not blank
    np.testing.assert_array_equal(first[40:], same[40:])  # the title differs, masks do not
    assert np.abs(changed[40:] - same[40:]).max() > 10
    assert model.training and all(m.training for m in model.modules())
    rng_after_hook = torch.get_rng_state()
    torch.set_rng_state(rng_before)
    torch.rand(7)
    assert torch.equal(rng_after_hook, torch.get_rng_state())
    if generator_before is not None:
        assert model.backbone.mask_generator is generator_before
        assert torch.equal(generator_before.get_state(), generator_state)


def test_hog_figure_has_a_legend_and_pixel_figure_none():
    legends = {}
    for case in ('vit-hog', 'vit-pixel'):
        model = build_model(case).eval()
        image = ImageInput(IMAGE, (64, 64), model.data_preprocessor)
        x = image.tensor()
        layers, patch_mask = reconstruct(model, x, seed=0)
        fig = reconstruction_figure(image, x, layers, patch_mask, model.target_generator)
        legends[case] = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert any('cell in the loss' in t for t in legends['vit-hog'])
    assert any('visible cell' in t for t in legends['vit-hog'])
    assert any('brightness' in t for t in legends['vit-hog'])
    assert legends['vit-pixel'] == []


def test_refuses_a_model_it_cannot_draw(tmp_path):
    model = torch.nn.Linear(2, 2)
    runner = stub_runner(model, tmp_path, 'live_recon_refuse')
    with pytest.raises(TypeError, match='LocalMIM pre-training model'):
        LiveReconstructionHook(images=IMAGE).before_train(runner)
