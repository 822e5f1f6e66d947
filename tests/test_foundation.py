"""The plugin frame: registration, configs, stock-style tools, resume, distributed CPU runs."""
import glob
import json
import os.path as osp
import pickletools
import subprocess
import sys
import zipfile

import pytest
import torch
from mmengine.config import Config

from .conftest import REPO, TINY_VIT_CONFIG, run_tool, train

REGISTERED = ['LocalMIM', 'LocalMIMViT', 'MultiLayerNeck', 'LocalMIMHead',
              'MultiScaleHOGGenerator', 'MultiScalePixelGenerator']
# Only these two pass 2 iterations: 64 of the 300 sample images at batch 32.
TWO_ITERS = ['--cfg-options', 'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=64']


def test_import_registers_names_without_adding_mmdet_or_mmseg():
    # mmpretrain itself imports mmdet when it is installed; the plugin must add nothing more.
    code = ('import sys, mmpretrain.models; before = set(sys.modules); import localmim_mm; '
            'from mmpretrain.registry import MODELS; '
            f'missing = [n for n in {REGISTERED!r} if MODELS.get(n) is None]; '
            'added = sorted(m for m in set(sys.modules) - before '
            'if m.split(".")[0] in ("mmdet", "mmseg")); print(missing, added)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout.strip().splitlines()[-1]
    assert out == '[] []'


PRETRAIN_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'localmim*', '*.py')) +
                          glob.glob(osp.join(REPO, 'configs', 'localmim_*.py')) +
                          glob.glob(osp.join(REPO, 'configs', 'lomar', '*.py')))


@pytest.mark.parametrize('path', PRETRAIN_CONFIGS, ids=osp.basename)
def test_pretrain_config_loads_and_builds(path):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmpretrain'
    assert 'localmim_mm' in cfg.custom_imports.imports
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    if cfg.model.type == 'LocalMIM':
        assert len(model.backbone.out_indices) == len(model.head.decoders)


def latest_scalars(work_dir):
    (path, ) = glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_two_iteration_training_run(tmp_path):
    train(TINY_VIT_CONFIG, tmp_path, *TWO_ITERS,
          'default_hooks.logger.interval=1')
    assert osp.isfile(tmp_path / 'epoch_1.pth')
    logged = [r for r in latest_scalars(tmp_path) if 'loss' in r]
    assert [r['iter'] for r in logged] == [1, 2]
    for record in logged:
        parts = sum(record[f'loss_block{i}'] for i in (1, 3, 5, 7))
        assert record['loss'] == pytest.approx(parts, rel=1e-4)


def runner_checkpoint_globals(path):
    with zipfile.ZipFile(path) as zf:
        (name, ) = [n for n in zf.namelist() if n.endswith('data.pkl')]
        ops = pickletools.genops(zf.read(name))
        return {str(arg) for op, arg, _ in ops if op.name == 'GLOBAL'}


def test_resume_from_runner_checkpoint_under_weights_only(tmp_path):
    train(TINY_VIT_CONFIG, tmp_path, '--cfg-options', 'train_cfg.max_epochs=1')
    ckpt = tmp_path / 'epoch_1.pth'
    assert not any('getattr' in g for g in runner_checkpoint_globals(ckpt))
    # Loads with torch's default (weights_only=True) once the plugin is imported.
    loaded = torch.load(ckpt, map_location='cpu')
    assert loaded['meta']['epoch'] == 1 and 'message_hub' in loaded

    proc = train(TINY_VIT_CONFIG, tmp_path, '--resume', '--cfg-options',
                 'train_cfg.max_epochs=2')
    assert 'resumed epoch: 1, iter: 10' in proc.stdout + proc.stderr
    resumed = torch.load(tmp_path / 'epoch_2.pth', map_location='cpu')
    assert resumed['meta']['iter'] == 20


def test_load_from_runner_checkpoint(tmp_path, tiny_localmim_checkpoint):
    proc = train(TINY_VIT_CONFIG, tmp_path, '--cfg-options',
                 f'load_from={tiny_localmim_checkpoint}', *TWO_ITERS[1:])
    assert 'Load checkpoint from' in proc.stdout + proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only message')
def test_amp_on_cpu_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, 'tools/train.py', TINY_VIT_CONFIG, '--amp',
                           '--work-dir', str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert 'no CUDA GPU is available' in proc.stderr and '--no-amp' in proc.stderr
    assert 'AssertionError' not in proc.stderr


def test_no_amp_turns_an_amp_recipe_into_float32():
    from localmim_mm.runtime.launch.launcher import check_amp
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'localmim_vit-b.py'))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    check_amp(cfg, amp_flag=False, no_amp_flag=True)
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'loss_scale' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(2e-4 * 2048 / 256)


def test_dist_train_two_processes_gloo(tmp_path):
    proc = run_tool(['bash', 'tools/dist_train.sh', TINY_VIT_CONFIG, '2', '--work-dir',
                     str(tmp_path), *TWO_ITERS],
                    env={'PORT': '29517'}, timeout=600)
    log = proc.stdout + proc.stderr
    assert 'gloo process group (rank 0 of 2)' in log  # ranks > 0 log warnings only
    ckpt = torch.load(tmp_path / 'epoch_1.pth', map_location='cpu')
    # 64 images over 2 ranks x 32 per rank: one iteration per epoch.
    assert ckpt['meta']['iter'] == 1
