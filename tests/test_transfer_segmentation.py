"""Segmentation transfer: UperNet configs, BEiT-style ViT loading, layer decay, CamVid."""
import json
import os
import os.path as osp
import tarfile

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope

from .conftest import REPO, SHARED_DATA, train

import localmim_mm  # noqa: F401
import localmim_mm.seg  # noqa: F401
import localmim_mm.transfer  # noqa: F401

SEG = osp.join(REPO, 'configs', 'benchmarks', 'mmsegmentation')
ADE_VIT = osp.join(SEG, 'upernet_vit-base-p16_8xb2-160k_ade20k-512x512.py')
ADE_SWIN = osp.join(SEG, 'upernet_swin-base-p4-w7_8xb2-160k_ade20k-512x512.py')
TINY = osp.join(SEG, 'upernet_vit-tiny-p8_1xb4-tiny_camvid-128x128.py')


def _models():
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    return MODELS


def _tiny_backbone(checkpoint):
    cfg = Config.fromfile(TINY)
    cfg.model.backbone.init_cfg.checkpoint = checkpoint
    backbone = _models().build(cfg.model.backbone)
    backbone.init_weights()
    return backbone


def _backbone_tensors(ckpt_path):
    state = torch.load(ckpt_path, map_location='cpu', weights_only=True)['state_dict']
    return {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}


def test_ade20k_vit_recipe_is_the_papers():
    cfg = Config.fromfile(ADE_VIT)
    bb = cfg.model.backbone
    assert bb.type == 'mmpretrain.BEiTViT' and bb.out_indices == [1, 3, 9, 11]
    assert bb.use_rel_pos_bias and bb.layer_scale_init_value == 1.0 and bb.bias is True
    assert cfg.model.neck.type == 'Feature2Pyramid' and cfg.model.neck.rescales == [4, 2, 1, 0.5]
    opt = cfg.optim_wrapper
    assert (opt.optimizer.lr, opt.optimizer.weight_decay) == (4e-4, 0.05)
    assert opt.paramwise_cfg.layer_decay_rate == 0.65
    assert cfg.param_scheduler[0].end == 1500 and cfg.param_scheduler[1].type == 'PolyLR'
    assert cfg.train_cfg.max_iters == 160000
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.model.test_cfg == dict(mode='slide', crop_size=(512, 512), stride=(341, 341))
    swin = Config.fromfile(ADE_SWIN)
    assert swin.model.backbone.arch == 'base' and swin.model.backbone.drop_path_rate == 0.3
    assert (swin.optim_wrapper.optimizer.lr, swin.optim_wrapper.optimizer.weight_decay) == (
        6e-5, 0.01)


@pytest.mark.parametrize('path', [ADE_VIT, ADE_SWIN, TINY])
def test_every_segmentation_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmseg' and cfg.model.backbone.init_cfg.type == 'LoudPretrained'
    model = _models().build(cfg.model)
    size = cfg.crop_size
    feats = model.extract_feat(torch.zeros(1, 3, *size))
    assert [f.shape[-1] for f in feats] == [size[1] // s for s in (4, 8, 16, 32)]


def test_swin_base_loads_a_localmim_swin_checkpoint(tmp_path):
    from localmim_mm.models.backbones import LocalMIMSwin
    source = LocalMIMSwin(arch='base').state_dict()
    path = str(tmp_path / 'swin.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in source.items()}}, path)
    cfg = Config.fromfile(ADE_SWIN)
    cfg.model.backbone.init_cfg.checkpoint = path
    backbone = _models().build(cfg.model.backbone)
    backbone.init_weights()
    loaded = backbone.state_dict()
    for name, value in source.items():
        if name != 'mask_token':
            assert torch.equal(loaded[name], value), name


def test_tiny_vit_loads_every_encoder_tensor(tiny_localmim_checkpoint):
    source = _backbone_tensors(tiny_localmim_checkpoint)
    loaded = _tiny_backbone(tiny_localmim_checkpoint).state_dict()
    assert set(source) <= set(loaded)
    for name, value in source.items():
        if name == 'pos_embed':  # 8x8 grid at 64 px -> 16x16 at the 128-px crop
            cls, grid = value[:, :1], value[:, 1:].reshape(1, 8, 8, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(16, 16), mode='bicubic', align_corners=False)
            value = torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)
            torch.testing.assert_close(loaded[name], value, atol=1e-5, rtol=1e-5)
        else:
            assert torch.equal(loaded[name], value), name


def test_beit_style_vit_computes_the_pretrained_vit(tiny_localmim_checkpoint):
    """With its new parts neutral (relative position bias 0, layer scale 1), the BEiT-style ViT
    is the plain ViT the checkpoint was pre-trained as."""
    from mmpretrain.models import VisionTransformer
    beit = _tiny_backbone(tiny_localmim_checkpoint)
    beit.eval()  # (mmpretrain backbones' train() returns None)
    for name, p in beit.named_parameters():
        if 'relative_position_bias_table' in name:
            p.data.zero_()
        if 'gamma_' in name:
            assert torch.all(p == 1.0), name
    vit = VisionTransformer(arch=Config.fromfile(TINY).model.backbone.arch, img_size=128,
                            patch_size=8, out_indices=[1, 3, 5, 7], out_type='featmap',
                            final_norm=False)
    vit.load_state_dict(_backbone_tensors(tiny_localmim_checkpoint), strict=False)
    vit.pos_embed.data.copy_(beit.pos_embed.data)  # the resized one
    vit.eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        for a, b in zip(beit(x), vit(x)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_layer_decay_on_a_segmentor():
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(TINY)
    cfg.model.backbone.init_cfg = None
    model = _models().build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    base, rate = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    lr = {g['param_name']: g['lr'] for g in wrapper.optimizer.param_groups}
    assert lr['backbone.pos_embed'] == pytest.approx(base * rate**9)
    assert lr['backbone.layers.2.attn.relative_position_bias_table'] == pytest.approx(
        base * rate**6)
    assert lr['backbone.layers.7.gamma_2'] == pytest.approx(base * rate)
    assert lr['decode_head.conv_seg.weight'] == pytest.approx(base)
    assert lr['neck.upsample_2x.0.weight'] == pytest.approx(base)


@pytest.fixture(scope='module')
def camvid(tmp_path_factory):
    archive = osp.join(SHARED_DATA, 'camvid.tar.gz')
    if not osp.isfile(archive):
        pytest.skip(f'{archive} is absent (the shared CamVid copy; not in a fresh clone)')
    dest = tmp_path_factory.mktemp('camvid')
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter='data')
    return str(dest / 'camvid')


def test_camvid_dataset(camvid):
    _models()
    from mmseg.registry import DATASETS
    train_set = DATASETS.build(dict(type='CamVidDataset', data_root=camvid,
                                    data_prefix=dict(img_path='train', seg_map_path='trainannot')))
    assert len(train_set) == 367 and len(train_set.metainfo['classes']) == 11
    sample = train_set.get_data_info(0)
    assert sample['seg_map_path'].endswith('.png') and sample['reduce_zero_label'] is False
    with pytest.raises(ValueError, match='reduce_zero_label'):
        DATASETS.build(dict(type='CamVidDataset', data_root=camvid, reduce_zero_label=True,
                            data_prefix=dict(img_path='val', seg_map_path='valannot')))


def test_train_two_iterations_and_evaluate(tiny_localmim_checkpoint, camvid, tmp_path):
    work_dir = tmp_path / 'seg'
    proc = train(TINY, work_dir, '--cfg-options',
                 f'model.backbone.init_cfg.checkpoint={tiny_localmim_checkpoint}',
                 f'train_dataloader.dataset.data_root={camvid}',
                 f'val_dataloader.dataset.data_root={camvid}',
                 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                 'default_hooks.logger.interval=1', 'val_dataloader.dataset.indices=3')
    log = proc.stdout + proc.stderr
    assert 'LoudPretrained: loaded 100 of 132 tensors of BEiTViT' in log
    assert 'Iter(train) [2/2]' in log
    run = next(d for d in os.listdir(work_dir) if osp.isdir(work_dir / d / 'vis_data'))
    with open(work_dir / run / 'vis_data' / 'scalars.json') as f:
        metrics = [json.loads(line) for line in f if '"mIoU"' in line]
    assert metrics and 0 <= metrics[-1]['mIoU'] <= 100
