"""Classification transfer: recipes, loud pre-trained loading, and a real checkpoint end to end.

End to end: a LocalMIM tiny pre-training runs 2 iterations through ``tools/train.py``, is
published, and the fine-tune config loads it (every encoder tensor, values equal), trains 2
iterations through ``tools/train.py`` and is evaluated once by ``tools/test.py``.
"""
import glob
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import WEIGHT_INITIALIZERS, DefaultScope, build_from_cfg

import localmim_mm  # noqa: F401
import localmim_mm.transfer  # noqa: F401
from localmim_mm.transfer import LoudPretrainedInit, load_pretrained

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLS = osp.join(REPO, 'configs', 'benchmarks', 'classification')
PRETRAIN = {
    'vit': osp.join(REPO, 'configs', 'localmim', 'localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py'),
    'swin': osp.join(REPO, 'configs', 'localmim', 'localmim_swin-tiny_1xb32-coslr-20e_sample.py'),
}
FINETUNE = {
    'vit': osp.join(CLS, 'vit-tiny-p8_1xb32-coslr-20e_sample.py'),
    'swin': osp.join(CLS, 'swin-tiny-w4_1xb32-coslr-20e_sample.py'),
}
NEW_IN_FINETUNE = {'vit': {'ln2.weight', 'ln2.bias'}, 'swin': {'norm3.weight', 'norm3.bias'}}
TRAIN_SUBSET = '[' + ','.join(str(i) for i in range(0, 300, 19)[:16]) + ']'  # 16 images, 10 classes
TINY_VIT = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def _config(path):
    cfg = Config.fromfile(path)
    return cfg


def _build(cfg_model):
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg_model)


# ----------------------------------------------------------------------------- recipes
# The spec's fine-tuning numbers (section 5), typed here independently of the configs.
RECIPES = {
    'vit-base-p16_8xb128-amp-coslr-100e_in1k.py':
        dict(lr=2e-3, decay=0.65, drop_path=0.1, epochs=100, warmup=20, batch=1024),
    'vit-base-p16_8xb128-amp-lr4e-3-ld0.75-coslr-100e_in1k.py':
        dict(lr=4e-3, decay=0.75, drop_path=0.1, epochs=100, warmup=20, batch=1024),
    'vit-large-p16_8xb128-amp-coslr-50e_in1k.py':
        dict(lr=3e-3, decay=0.75, drop_path=0.2, epochs=50, warmup=5, batch=1024),
    'swin-base-w7_8xb128-amp-coslr-100e_in1k.py':
        dict(lr=4e-3, decay=0.9, drop_path=0.1, epochs=100, warmup=20, batch=2048),
    'swin-base-w7_8xb128-amp-lr5e-3-coslr-100e_in1k.py':
        dict(lr=5e-3, decay=0.9, drop_path=0.1, epochs=100, warmup=20, batch=2048),
}


@pytest.mark.parametrize('name', sorted(RECIPES))
def test_finetune_recipe_numbers(name):
    cfg, want = _config(osp.join(CLS, name)), RECIPES[name]
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.weight_decay == 0.05
    assert opt.optimizer.betas == (0.9, 0.999)
    assert opt.optimizer.lr == want['lr']
    assert opt.constructor == 'LearningRateDecayOptimWrapperConstructor'
    assert opt.paramwise_cfg.layer_decay_rate == want['decay']
    assert cfg.model.backbone.drop_path_rate == want['drop_path']
    assert cfg.train_cfg.max_epochs == want['epochs']
    assert cfg.param_scheduler[0].end == want['warmup'] == cfg.param_scheduler[1].begin
    assert 8 * cfg.train_dataloader.batch_size * opt.get('accumulative_counts', 1) == want['batch']
    assert [a.type for a in cfg.model.train_cfg.augments] == ['Mixup', 'CutMix']
    assert [a.alpha for a in cfg.model.train_cfg.augments] == [0.8, 1.0]
    assert cfg.model.head.loss.label_smooth_val == 0.1
    steps = {s.type: s for s in cfg.train_dataloader.dataset.pipeline}
    assert steps['RandAugment'].magnitude_level == 9
    assert steps['RandomErasing'].erase_prob == 0.25
    test_steps = {s.type: s for s in cfg.val_dataloader.dataset.pipeline}
    assert test_steps['ResizeEdge'].scale == 256 and test_steps['CenterCrop'].crop_size == 224
    assert cfg.model.backbone.init_cfg.type == 'LoudPretrained'
    if cfg.model.backbone.type == 'VisionTransformer':
        assert cfg.model.backbone.out_type == 'avg_featmap'
        assert cfg.model.backbone.final_norm is False
    else:
        assert cfg.model.neck.type == 'GlobalAveragePooling'


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(CLS, '*.py'))))
def test_every_classification_config_builds(path):
    cfg = _config(path)
    model = _build(cfg.model)
    assert model.head.num_classes == cfg.data_preprocessor.num_classes
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'


def test_layer_decay_follows_the_release_rule():
    """Block i of an L-block ViT gets lr * decay ** (L - i) (release: layer id i + 1 of L + 1);
    the head the full lr; 1-D parameters, cls_token and pos_embed no weight decay."""
    from mmpretrain.registry import OPTIM_WRAPPERS  # noqa: F401  (registers the constructor)
    from mmengine.optim import build_optim_wrapper
    cfg = _config(FINETUNE['vit'])
    model = _build(cfg.model)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lr, decay, depth = 1e-3, 0.75, 8
    groups = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    assert groups['backbone.cls_token']['lr'] == pytest.approx(lr * decay**(depth + 1))
    assert groups['backbone.patch_embed.projection.weight']['lr'] == pytest.approx(
        lr * decay**(depth + 1))
    for i in range(depth):
        assert groups[f'backbone.layers.{i}.attn.qkv.weight']['lr'] == pytest.approx(
            lr * decay**(depth - i))
    assert groups['head.fc.weight']['lr'] == pytest.approx(lr)
    assert groups['backbone.layers.0.attn.qkv.weight']['weight_decay'] == 0.05
    for name in ('backbone.layers.0.attn.qkv.bias', 'backbone.layers.0.ln1.weight',
                 'backbone.cls_token', 'backbone.pos_embed', 'backbone.ln2.weight'):
        assert groups[name]['weight_decay'] == 0.0, name


# ----------------------------------------------------------------------------- loud loading
def _tiny_vit(**kwargs):
    from mmpretrain.models import VisionTransformer
    return VisionTransformer(arch=TINY_VIT, img_size=32, patch_size=8, final_norm=False,
                             out_type='avg_featmap', **kwargs)


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """A published-layout file: a random tiny ViT's tensors under ``backbone.`` plus a neck."""
    torch.manual_seed(0)
    source = _tiny_vit()
    state = {f'backbone.{k}': v for k, v in source.state_dict().items() if not k.startswith('ln2')}
    state['neck.norms.0.weight'] = torch.ones(32)
    path = str(tmp_path / 'tiny.pth')
    torch.save({'state_dict': state, 'meta': {}}, path)
    return path, state


def test_loud_pretrained_loads_after_the_backbone_init(tiny_checkpoint):
    """Every encoder tensor equals the file after ``init_weights`` (pos_embed and the FFNs
    included, which VisionTransformer / its layers would re-initialise after a plain
    initializer)."""
    path, state = tiny_checkpoint
    vit = _tiny_vit(init_cfg=dict(type='LoudPretrained', checkpoint=path, prefix='backbone.',
                                  allow_missing=['ln2.*']))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        vit.init_weights()
    loaded = vit.state_dict()
    assert set(loaded) - {k[len('backbone.'):] for k in state} == {'ln2.weight', 'ln2.bias'}
    for key, value in state.items():
        if key.startswith('backbone.'):
            assert torch.equal(loaded[key[len('backbone.'):]], value), key


def test_loud_pretrained_reports_counts(tiny_checkpoint):
    path, state = tiny_checkpoint
    vit = _tiny_vit()
    report = load_pretrained(vit, path, prefix='backbone.', allow_missing=['ln2.*'])
    n_backbone = sum(k.startswith('backbone.') for k in state)
    assert len(report.loaded) == n_backbone == len(vit.state_dict()) - 2
    assert report.unexpected == []
    assert f'loaded {n_backbone} of {n_backbone + 2} tensors' in report.summary()


def test_loud_pretrained_raises_on_missing_encoder_weight(tmp_path, tiny_checkpoint):
    _, state = tiny_checkpoint
    del state['backbone.layers.1.attn.qkv.weight']
    path = str(tmp_path / 'holed.pth')
    torch.save({'state_dict': state}, path)
    with pytest.raises(ValueError, match=r'layers\.1\.attn\.qkv\.weight'):
        load_pretrained(_tiny_vit(), path, prefix='backbone.', allow_missing=['ln2.*'])
    with pytest.raises(ValueError, match='ln2.weight'):  # ln2 not declared new
        load_pretrained(_tiny_vit(), tiny_checkpoint[0], prefix='backbone.')


def test_loud_pretrained_raises_when_nothing_matches(tiny_checkpoint):
    path, _ = tiny_checkpoint
    with pytest.raises(ValueError, match="starts with prefix 'encoder.'"):
        load_pretrained(_tiny_vit(), path, prefix='encoder.')
    with pytest.raises(ValueError, match='no tensor of .* matched VisionTransformer'):
        load_pretrained(_tiny_vit(), path, prefix=None)  # full file, backbone-relative model


def test_loud_pretrained_lists_shape_mismatches(tmp_path):
    """A wider ViT's file into the tiny ViT (as ViT-L into ViT-B) is refused with the list."""
    from mmpretrain.models import VisionTransformer
    wide = VisionTransformer(arch=dict(TINY_VIT, embed_dims=48, feedforward_channels=96),
                             img_size=32, patch_size=8, final_norm=False)
    path = str(tmp_path / 'wide.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in wide.state_dict().items()}}, path)
    with pytest.raises(ValueError, match='have another shape') as err:
        load_pretrained(_tiny_vit(), path, prefix='backbone.', allow_missing=['ln2.*'])
    assert 'another width: the file has 48 channels where the model has 32' in str(err.value)
    assert 'cls_token (file [1, 1, 48], model [1, 1, 32])' in str(err.value)


def test_loud_pretrained_needs_a_checkpoint():
    vit = _tiny_vit(init_cfg=dict(type='LoudPretrained', checkpoint='', prefix='backbone.'))
    with DefaultScope.overwrite_default_scope('mmpretrain'), \
            pytest.raises(ValueError, match='init_cfg.checkpoint=PATH'):
        vit.init_weights()


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg'])
def test_loud_pretrained_resolves_in_every_scope(scope, tiny_checkpoint):
    import importlib
    importlib.import_module(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        init = build_from_cfg(dict(type='LoudPretrained', checkpoint='x.pth'), WEIGHT_INITIALIZERS)
        assert isinstance(init, LoudPretrainedInit)
        vit = _tiny_vit(init_cfg=dict(type='LoudPretrained', checkpoint=tiny_checkpoint[0],
                                      prefix='backbone.', allow_missing=['ln2.*']))
        vit.init_weights()
    assert torch.equal(vit.pos_embed, tiny_checkpoint[1]['backbone.pos_embed'])


def test_transfer_package_imports_neither_mmdet_nor_mmseg():
    """(mmpretrain itself imports mmdet when present, so the sources are checked, plus mmseg.)"""
    import re
    sources = glob.glob(osp.join(REPO, 'localmim_mm', 'transfer', '*.py'))
    for path in sources:
        text = open(path).read()
        assert not re.search(r'^\s*(from|import)\s+mm(det|seg)\b', text, re.M), path
    code = ('import sys, localmim_mm, localmim_mm.transfer; '
            'assert "mmseg" not in sys.modules')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=REPO)


def test_metafiles_list_every_config():
    """Each pre-training / benchmark config is in a metafile, and each listed config exists."""
    import yaml
    listed = set()
    for meta in ('configs/localmim/metafile.yml', 'configs/lomar/metafile.yml'):
        for model in yaml.safe_load(open(osp.join(REPO, meta)))['Models']:
            assert osp.isfile(osp.join(REPO, model['Config'])), model['Config']
            listed.add(model['Config'])
    on_disk = {osp.relpath(p, REPO) for pattern in ('configs/localmim/*.py', 'configs/lomar/*.py',
                                                    'configs/benchmarks/*/*.py')
               for p in glob.glob(osp.join(REPO, pattern))}
    assert on_disk - listed == set()


# ----------------------------------------------------------------------------- end to end
def _run(args, log_path):
    with open(log_path, 'w') as log:
        proc = subprocess.run([sys.executable] + args, cwd=REPO, stdout=log,
                              stderr=subprocess.STDOUT)
    text = open(log_path).read()
    assert proc.returncode == 0, f'{args[0]} failed:\n{text[-3000:]}'
    return text


def _publish_tool():
    path = osp.join(REPO, 'tools', 'model_converters', 'publish_model.py')
    spec = importlib.util.spec_from_file_location('publish_model', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module', params=['vit', 'swin'])
def published(request, tmp_path_factory):
    """(backbone kind, published file, work dir) after a 2-iteration pre-training."""
    kind = request.param
    if not osp.exists(PRETRAIN[kind]):
        pytest.skip(f'{PRETRAIN[kind]} is absent (the tiny pre-training config of this backbone)')
    work = tmp_path_factory.mktemp(f'transfer_{kind}')
    _run(['tools/train.py', PRETRAIN[kind], '--work-dir', str(work / 'pre'), '--cfg-options',
          'train_cfg.max_epochs=1', 'train_dataloader.batch_size=8',
          'train_dataloader.dataset.indices=16', 'default_hooks.checkpoint.interval=1'],
         work / 'pre.log')
    final = _publish_tool().publish(str(work / 'pre' / 'epoch_1.pth'),
                                    str(work / f'localmim_{kind}-tiny.pth'))
    return kind, final, work


def test_published_checkpoint_loads_every_encoder_tensor(published):
    kind, path, _ = published
    source = torch.load(path, weights_only=True)['state_dict']
    cfg = _config(FINETUNE[kind])
    cfg.model.backbone.init_cfg.checkpoint = path
    model = _build(cfg.model)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model.init_weights()
    backbone = model.backbone.state_dict()
    from_ckpt = {k[len('backbone.'):] for k in source if k.startswith('backbone.')}
    assert set(backbone) - from_ckpt == NEW_IN_FINETUNE[kind]
    for key in set(backbone) & from_ckpt:
        assert torch.equal(backbone[key], source['backbone.' + key]), key


def test_finetune_and_test_through_the_tools(published):
    kind, path, work = published
    config = FINETUNE[kind]
    log = _run(['tools/train.py', config, '--work-dir', str(work / 'ft'), '--no-validate',
                '--cfg-options',
                f'model.backbone.init_cfg.checkpoint={path}', 'train_cfg.max_epochs=1',
                'train_dataloader.batch_size=8', f'train_dataloader.dataset.indices={TRAIN_SUBSET}',
                'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1'],
               work / 'ft.log')
    n_backbone = sum(k.startswith('backbone.') for k in torch.load(path, weights_only=True)
                     ['state_dict'])
    n_model = len(_build(_config(config).model).backbone.state_dict())
    n_loaded = n_model - len(NEW_IN_FINETUNE[kind])
    assert n_loaded <= n_backbone
    assert f'LoudPretrained: loaded {n_loaded} of {n_model} tensors' in log
    assert 'Epoch(train) [1][2/2]' in log  # two iterations
    out = work / 'metrics.json'  # one evaluation, on the 100 validation images
    test_log = _run(['tools/test.py', config, str(work / 'ft' / 'epoch_1.pth'), '--work-dir',
                     str(work / 'test'), '--out', str(out)], work / 'test.log')
    assert 'Epoch(test) [2/2]' in test_log
    metrics = json.load(open(out))
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0
