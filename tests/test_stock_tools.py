"""The stock tools where a new user hit sharp edges: which split tools/test.py evaluates, resuming
past a truncated checkpoint, truncated files anywhere a checkpoint is read, mistyped registered
types, busy rendezvous ports, and corrupt images in the downstream configs."""
import glob
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

import localmim_mm  # noqa: F401

from .conftest import REPO, TINY_VIT_CONFIG, run_tool, train

TINY_CLS_CONFIG = osp.join(REPO, 'configs', 'benchmarks', 'classification',
                           'vit-tiny-p8_1xb32-coslr-20e_sample.py')
SAMPLE_VAL = osp.join(REPO, 'data', 'sample_cifar', 'val')
SINGLE_THREAD = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def _tool_proc(args, timeout=300):
    """Run a tool that is expected to fail; returns the finished process."""
    env = dict(os.environ, PYTHONPATH=REPO, **SINGLE_THREAD)
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


# ------------------------------------------------------------------ 1. the split tools/test.py runs
def _image_folder(root, per_class):
    """CustomDataset layout: ``per_class`` sample images of cat and dog each."""
    for name in ('cat', 'dog'):
        os.makedirs(osp.join(root, name))
        for image in sorted(os.listdir(osp.join(SAMPLE_VAL, name)))[:per_class]:
            shutil.copy(osp.join(SAMPLE_VAL, name, image), osp.join(root, name, image))


@pytest.fixture(scope='module')
def classifier_checkpoint(tmp_path_factory):
    """The tiny fine-tune model's initial weights as a runner-style checkpoint."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(TINY_CLS_CONFIG).model)
    path = tmp_path_factory.mktemp('cls') / 'classifier.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


def test_val_overrides_reach_the_test_loader_derived_from_val(tmp_path, classifier_checkpoint):
    """A val / test pair of different sizes: overriding val_dataloader to the 4-image test split
    evaluates those 4 images (one iteration each at batch 1), not the config's 100 val images,
    and the tool says which root, split and count it evaluates."""
    data = tmp_path / 'data'
    _image_folder(data / 'val', per_class=5)
    _image_folder(data / 'test', per_class=2)
    proc = run_tool([sys.executable, 'tools/test.py', TINY_CLS_CONFIG, classifier_checkpoint,
                     '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                     f'val_dataloader.dataset.data_root={data}',
                     'val_dataloader.dataset.data_prefix=test', 'val_dataloader.batch_size=1',
                     'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False'],
                    env=SINGLE_THREAD)
    log = proc.stdout + proc.stderr
    assert 'Epoch(test) [4/4]' in log
    assert f"evaluating 4 images of CustomDataset: root '{data}'" in log
    assert f"{data / 'test'}" in log


def _config_with_own_test_loader(tmp_path):
    path = tmp_path / 'own_test.py'
    path.write_text(f"_base_ = [{TINY_CLS_CONFIG!r}]\n"
                    "test_dataloader = dict(batch_size=7, dataset=dict(data_prefix='test'))\n")
    return Config.fromfile(str(path))


def test_overrides_that_cannot_change_the_evaluation_are_refused(tmp_path):
    from localmim_mm.runtime.cli.test_split import merge_test_options
    cfg = _config_with_own_test_loader(tmp_path)
    with pytest.raises(SystemExit, match=r'defines its own test_dataloader .* no effect; write it '
                       r'as test_dataloader.dataset.data_root=/x'):
        merge_test_options(cfg, {'val_dataloader.dataset.data_root': '/x'})
    with pytest.raises(SystemExit, match='train_dataloader.batch_size=2: tools/test.py runs only'):
        merge_test_options(Config.fromfile(TINY_CLS_CONFIG), {'train_dataloader.batch_size': 2})
    cfg = _config_with_own_test_loader(tmp_path)  # a test_* override is kept as given
    merge_test_options(cfg, {'test_dataloader.dataset.data_root': '/y'})
    assert cfg.test_dataloader.dataset.data_root == '/y' and cfg.test_dataloader.batch_size == 7
    cfg = Config.fromfile(TINY_CLS_CONFIG)  # derived from val: test_* overrides win over val_*
    merge_test_options(cfg, {'val_dataloader.batch_size': 3, 'test_dataloader.batch_size': 5,
                             'val_dataloader.dataset.data_root': '/z'})
    assert cfg.test_dataloader.batch_size == 5 and cfg.val_dataloader.batch_size == 3
    assert cfg.test_dataloader.dataset.data_root == '/z'


# ------------------------------------------------------------------ 3. truncated checkpoints
def _truncate(path, keep=0.6):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])


@pytest.fixture
def bad_files(tmp_path):
    torch.save({'state_dict': {'w': torch.arange(10000.)}}, tmp_path / 'truncated.pth')
    _truncate(tmp_path / 'truncated.pth')
    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'page.pth').write_text('<!DOCTYPE html><title>404</title>')
    return {name: str(tmp_path / f'{name}.pth') for name in ('truncated', 'empty', 'page')}


def test_every_checkpoint_reader_says_truncated_corrupt(bad_files):
    from mmengine.runner.checkpoint import load_checkpoint

    from localmim_mm.transfer.checkpoint_file import CorruptCheckpointError

    from localmim_mm.analysis.loading import read_state_dict
    from localmim_mm.transfer import load_pretrained
    from localmim_mm.transfer.checkpoint_io import read_checkpoint
    readers = {
        'converters': lambda p: read_checkpoint(p),
        'converters --trust-pickle': lambda p: read_checkpoint(p, trusted=True),
        'LoudPretrained': lambda p: load_pretrained(torch.nn.Linear(2, 2), p),
        'mmengine (load_from, resume, Pretrained)': lambda p: load_checkpoint(
            torch.nn.Linear(2, 2), p),
        'analysis tools': read_state_dict,
    }
    for kind, path in bad_files.items():
        for reader, read in readers.items():
            with pytest.raises(CorruptCheckpointError) as info:
                read(path)
            message = str(info.value)
            assert 'truncated/corrupt file' in message and path in message, (kind, reader)
            assert 'trust' not in message and 'WEIGHTS_ONLY' not in message, (kind, reader)


def test_a_damaged_member_loads_silently_but_fails_the_crc_check(tmp_path):
    """Why resume verifies CRC-32: torch.load does not, and returns wrong values."""
    from localmim_mm.transfer.checkpoint_file import CorruptCheckpointError, check_checkpoint_file
    path = str(tmp_path / 'flipped.pth')
    torch.save({'w': torch.zeros(10000)}, path)
    data = bytearray(open(path, 'rb').read())
    data[len(data) // 2] ^= 0xFF  # inside the tensor's bytes
    open(path, 'wb').write(data)
    assert torch.load(path, weights_only=True)['w'].abs().sum() > 0  # silently wrong
    check_checkpoint_file(path)  # the directory is intact
    with pytest.raises(CorruptCheckpointError, match='fails its CRC-32 check'):
        check_checkpoint_file(path, verify_crc=True)


def test_resume_falls_back_past_a_truncated_latest_checkpoint(tmp_path):
    """epoch_2.pth truncated, epoch_1.pth whole: --resume says it skips epoch_2 and why, resumes
    from epoch_1 and trains epochs 2 and 3 (2 iterations each)."""
    short = ['train_dataloader.dataset.indices=16', 'train_dataloader.batch_size=8',
             'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
             'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=5']
    train(TINY_VIT_CONFIG, tmp_path, '--cfg-options', 'train_cfg.max_epochs=2', *short)
    _truncate(tmp_path / 'epoch_2.pth')
    proc = train(TINY_VIT_CONFIG, tmp_path, '--resume', '--cfg-options',
                 'train_cfg.max_epochs=3', *short)
    log = proc.stdout + proc.stderr
    assert f'--resume: skipped {tmp_path / "epoch_2.pth"}' in log
    assert 'truncated/corrupt file' in log
    assert f'--resume: resuming from {tmp_path / "epoch_1.pth"}' in log
    assert 'resumed epoch: 1, iter: 2' in log
    assert torch.load(tmp_path / 'epoch_3.pth', weights_only=True)['meta']['iter'] == 6
    assert torch.load(tmp_path / 'epoch_2.pth', weights_only=True)['meta']['iter'] == 4


# ------------------------------------------------------------------ 8. mistyped types, busy port
def test_a_mistyped_registered_type_gets_a_did_you_mean(tmp_path):
    proc = _tool_proc([sys.executable, 'tools/train.py', TINY_VIT_CONFIG, '--work-dir',
                       str(tmp_path), '--cfg-options', 'model.backbone.type=LocalMIMVit'])
    assert proc.returncode != 0
    assert ("type='LocalMIMVit' is not registered in the mmpretrain::model registry: did you "
            "mean 'LocalMIMViT'?") in proc.stderr


def test_registry_hint_finds_a_transform_of_another_scope():
    import mmdet.registry  # noqa: F401  (the mmdet scope, as a detection config imports it)

    from localmim_mm.runtime.cli.registry_hints import hint_for
    hint = hint_for('StrictLoadImageFromFil is not in the mmdet::transform registry. Please ...')
    assert "did you mean 'mmpretrain.StrictLoadImageFromFile'" in hint


def test_a_busy_port_is_reported_with_a_free_one(tmp_path):
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run(
            ['bash', 'tools/dist_train.sh', TINY_VIT_CONFIG, '2', '--work-dir', str(tmp_path)],
            cwd=REPO, capture_output=True, text=True, timeout=120,
            env=dict(os.environ, PYTHONPATH=REPO, PYTHON=sys.executable, PORT=str(port)))
    assert proc.returncode != 0
    assert f'port {port} is already in use' in proc.stderr
    assert 'PORT=' in proc.stderr and 'tools/dist_train.sh' in proc.stderr
    assert not os.listdir(tmp_path)  # nothing was launched


# ------------------------------------------------------------------ 6. corrupt images downstream
BENCHMARK_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'benchmarks', '*', '*.py')))
STRICT = ('StrictLoadImageFromFile', 'mmpretrain.StrictLoadImageFromFile')


def _pipelines(obj):
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == 'pipeline' and isinstance(value, list):
                yield value
            yield from _pipelines(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _pipelines(value)


@pytest.mark.parametrize('path', BENCHMARK_CONFIGS, ids=osp.basename)
def test_downstream_configs_load_images_strictly(path):
    cfg = Config.fromfile(path)
    pipelines = [p for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')
                 for p in _pipelines(cfg.get(key))]
    if cfg.get('tta_pipeline'):
        pipelines.append(cfg.tta_pipeline)
    assert len(pipelines) >= 3
    for pipeline in pipelines:
        types = [t['type'] for t in pipeline]
        assert types[0] in STRICT, types
        assert not any('LoadImageFromFile' in t for t in types[1:]), types


@pytest.mark.parametrize('config', [
    'classification/vit-tiny-p8_1xb32-coslr-20e_sample.py',
    'mmdetection/mask-rcnn_vit-tiny-p8_sfp_1xb2-tiny_coco-mini.py',
    'mmsegmentation/upernet_vit-tiny-p8_1xb4-tiny_camvid-128x128.py'])
def test_a_truncated_image_is_named_by_the_downstream_pipelines(config, tmp_path):
    """Built through each library's registry (mmdet / mmseg resolve the mmpretrain loader by
    its scope): a JPEG cut short, which OpenCV would decode with a grey bottom, fails naming the
    file."""
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope
    from mmengine.utils import import_modules_from_strings

    from localmim_mm.datasets.load_image import CorruptImageError
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'benchmarks', config))
    import_modules_from_strings(**cfg.custom_imports)
    data = open(osp.join(SAMPLE_VAL, 'cat', '0001.jpg'), 'rb').read()
    bad = tmp_path / 'cut.jpg'
    bad.write_bytes(data[:len(data) // 2])
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
        with pytest.raises(CorruptImageError, match=f'corrupt image {bad}: truncated JPEG'):
            pipeline(dict(img_path=str(bad), seg_map_path=None, reduce_zero_label=False,
                          seg_fields=[], img_id=0, instances=[]))
