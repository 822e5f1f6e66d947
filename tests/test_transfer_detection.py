"""Detection transfer: Mask R-CNN configs, simple feature pyramid, layer decay, loud loading."""
import json
import os
import os.path as osp
import tarfile

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from .conftest import REPO, SHARED_DATA, train

import localmim_mm  # noqa: F401
import localmim_mm.det  # noqa: F401
import localmim_mm.transfer  # noqa: F401

DET = osp.join(REPO, 'configs', 'benchmarks', 'mmdetection')
TINY = osp.join(DET, 'mask-rcnn_vit-tiny-p8_sfp_1xb2-tiny_coco-mini.py')
CONFIGS = sorted(f for f in os.listdir(DET) if f.endswith('.py'))


def _models():
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    return MODELS


def _backbone_tensors(ckpt_path):
    state = torch.load(ckpt_path, map_location='cpu', weights_only=True)['state_dict']
    return {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}


@pytest.mark.parametrize('name', CONFIGS)
def test_every_detection_config_builds(name):
    cfg = Config.fromfile(osp.join(DET, name))
    assert cfg.default_scope == 'mmdet'
    assert cfg.model.backbone.init_cfg.type == 'LoudPretrained'
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    model = _models().build(cfg.model)
    feats = model.extract_feat(torch.zeros(1, 3, 64, 96))
    # RPN on 5 levels of strides 4 .. 64
    assert [f.shape[-2:] for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]


def test_paper_recipes():
    swin = Config.fromfile(osp.join(DET, 'mask-rcnn_swin-base-p4-w7_fpn_1x_coco.py'))
    assert swin.model.backbone.arch == 'base' and swin.model.neck.in_channels == [
        128, 256, 512, 1024]
    assert swin.optim_wrapper.optimizer.lr == 1e-4 and swin.train_cfg.max_epochs == 12
    swin3x = Config.fromfile(osp.join(DET, 'mask-rcnn_swin-base-p4-w7_fpn_ms-crop-3x_coco.py'))
    vit3x = Config.fromfile(osp.join(DET, 'mask-rcnn_vit-base-p16_sfp_ms-crop-3x_coco.py'))
    assert swin3x.train_cfg.max_epochs == vit3x.train_cfg.max_epochs == 36
    vit = Config.fromfile(osp.join(DET, 'mask-rcnn_vit-base-p16_sfp_1x_coco.py'))
    assert vit.optim_wrapper.constructor == 'BackboneLayerDecayOptimWrapperConstructor'
    assert vit.model.backbone.out_indices == (11, ) and vit.model.backbone.final_norm is False


def test_simple_feature_pyramid_shapes_and_errors():
    models = _models()
    neck = models.build(dict(type='SimpleFeaturePyramid', in_channels=64, out_channels=16))
    outs = neck((torch.randn(2, 64, 8, 8), ))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 32, 32), (2, 16, 16, 16), (2, 16, 8, 8),
                                             (2, 16, 4, 4), (2, 16, 2, 2)]
    # x4 stage: deconv -> channel LN -> GELU -> deconv, channels 64 -> 32 -> 16
    x4 = neck.stages[0][0]
    assert [type(m).__name__ for m in x4] == ['ConvTranspose2d', 'LayerNorm2d', 'GELU',
                                              'ConvTranspose2d']
    assert x4[3].out_channels == 16
    with pytest.raises(ValueError, match='scale_factors'):
        models.build(dict(type='SimpleFeaturePyramid', in_channels=64, out_channels=16,
                          scale_factors=(1.0, 2.0)))
    with pytest.raises(ValueError, match='num_outs'):
        models.build(dict(type='SimpleFeaturePyramid', in_channels=64, out_channels=16,
                          num_outs=3))


def test_channel_layer_norm_matches_a_loop():
    norm = _models().build(dict(type='LN2d', num_channels=3, eps=1e-6))
    x = torch.randn(2, 3, 4, 5)
    expected = torch.empty_like(x)
    for b in range(2):
        for i in range(4):
            for j in range(5):
                v = x[b, :, i, j]
                expected[b, :, i, j] = (v - v.mean()) / torch.sqrt(v.var(unbiased=False) + 1e-6)
    torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)


def test_layer_decay_on_a_detector():
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(TINY)
    cfg.model.backbone.init_cfg = None
    model = _models().build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    base, rate = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    lr = {g['param_name']: g['lr'] for g in wrapper.optimizer.param_groups}
    # 8 blocks -> depths 0 (stem) .. 9 (rest); scale = rate ** (9 - depth)
    assert lr['backbone.cls_token'] == pytest.approx(base * rate**9)
    assert lr['backbone.patch_embed.projection.weight'] == pytest.approx(base * rate**9)
    assert lr['backbone.layers.0.attn.qkv.weight'] == pytest.approx(base * rate**8)
    assert lr['backbone.layers.7.ffn.layers.1.weight'] == pytest.approx(base * rate**1)
    assert lr['neck.stages.0.1.conv.weight'] == pytest.approx(base)
    assert lr['roi_head.bbox_head.fc_cls.weight'] == pytest.approx(base)
    assert len(lr) == sum(1 for p in model.parameters() if p.requires_grad)


def test_swin_rule_and_mmdet_swin():
    from localmim_mm.engine.optimizers.layer_decay import backbone_layer_depth, swin_layer_depth
    depths = [2, 2, 18, 2]  # Swin-B: 24 blocks -> depths 0 .. 25
    assert swin_layer_depth(depths, 'backbone.patch_embed.projection.weight', 'backbone.') == (
        0, 26)
    assert swin_layer_depth(depths, 'backbone.stages.2.blocks.5.attn.w_msa.qkv.weight',
                            'backbone.') == (2 + 2 + 5 + 1, 26)
    assert swin_layer_depth(depths, 'backbone.stages.1.downsample.reduction.weight',
                            'backbone.') == (4, 26)
    assert swin_layer_depth(depths, 'neck.lateral_convs.0.conv.weight', 'backbone.') == (25, 26)
    # mmdet's own Swin has no get_layer_depth: the rule above applies
    holder = torch.nn.Module()
    holder.backbone = _models().build(dict(type='SwinTransformer', embed_dims=32, depths=[1, 2],
                                           num_heads=[1, 2], strides=(4, 2), out_indices=(0, 1)))
    depth = backbone_layer_depth(holder)
    assert depth('backbone.stages.1.blocks.1.ffn.layers.1.weight') == (1 + 1 + 1, 5)
    with pytest.raises(TypeError, match='no `backbone`'):
        backbone_layer_depth(torch.nn.Linear(2, 2))


def test_layer_decay_rate_is_required():
    from localmim_mm.engine.optimizers.layer_decay import BackboneLayerDecayOptimWrapperConstructor
    with pytest.raises(ValueError, match='layer_decay_rate'):
        BackboneLayerDecayOptimWrapperConstructor(
            dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4)), dict())


def test_swin_base_loads_a_localmim_swin_checkpoint(tmp_path):
    from localmim_mm.models.backbones import LocalMIMSwin
    source = LocalMIMSwin(arch='base')
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    path = str(tmp_path / 'localmim_swin-base.pth')
    torch.save({'state_dict': state}, path)
    cfg = Config.fromfile(osp.join(DET, 'mask-rcnn_swin-base-p4-w7_fpn_1x_coco.py'))
    cfg.model.backbone.init_cfg.checkpoint = path
    backbone = _models().build(cfg.model.backbone)
    backbone.init_weights()
    loaded = backbone.state_dict()
    encoder = {k: v for k, v in source.state_dict().items() if k != 'mask_token'}
    assert set(encoder) <= set(loaded)
    for name, value in encoder.items():
        assert torch.equal(loaded[name], value), name


@pytest.fixture(scope='module')
def coco_mini(tmp_path_factory):
    archive = osp.join(SHARED_DATA, 'coco_mini.tar.gz')
    if not osp.isfile(archive):
        pytest.skip(f'{archive} is absent (the shared COCO subset; not in a fresh clone)')
    dest = tmp_path_factory.mktemp('coco')
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter='data')
    return str(dest / 'coco_mini') + '/'


def test_tiny_config_loads_every_encoder_tensor(tiny_localmim_checkpoint):
    cfg = Config.fromfile(TINY)
    cfg.model.backbone.init_cfg.checkpoint = tiny_localmim_checkpoint
    backbone = _models().build(cfg.model.backbone)
    backbone.init_weights()
    source = _backbone_tensors(tiny_localmim_checkpoint)
    loaded = backbone.state_dict()
    assert set(source) == set(loaded)
    for name, value in source.items():
        assert torch.equal(loaded[name], value), name


def test_train_two_iterations_and_evaluate(tiny_localmim_checkpoint, coco_mini, tmp_path):
    work_dir = tmp_path / 'det'
    proc = train(TINY, work_dir, '--cfg-options',
                 f'model.backbone.init_cfg.checkpoint={tiny_localmim_checkpoint}',
                 f'train_dataloader.dataset.data_root={coco_mini}',
                 f'val_dataloader.dataset.data_root={coco_mini}',
                 f'val_evaluator.ann_file={coco_mini}annotations/instances_val2017.json',
                 'train_dataloader.dataset.indices=4', 'val_dataloader.dataset.indices=2',
                 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1')
    log = proc.stdout + proc.stderr
    assert 'LoudPretrained: loaded 100 of 100 tensors of VisionTransformer' in log
    assert 'Epoch(train) [1][2/2]' in log
    run = next(d for d in os.listdir(work_dir) if osp.isdir(work_dir / d / 'vis_data'))
    with open(work_dir / run / 'vis_data' / 'scalars.json') as f:
        metrics = [json.loads(line) for line in f if 'coco/bbox_mAP' in line]
    assert metrics and 0 <= metrics[-1]['coco/segm_mAP'] <= 1
