"""Faults: corrupt / truncated images, NaN / inf losses, interrupted checkpoint writes."""
import glob
import os
import os.path as osp
import shutil

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.fileio.backends import LocalBackend
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import localmim_mm  # noqa: F401
from localmim_mm.datasets import CorruptImageError, StrictLoadImageFromFile
from localmim_mm.runtime.hooks import NonFiniteLossHook
from .reliability_helpers import REPO, TINY_VIT_CONFIG

SAMPLE_DIR = osp.join(REPO, 'data', 'sample_cifar', 'train')


def sample_jpegs(n):
    return sorted(glob.glob(osp.join(SAMPLE_DIR, '*', '*.jpg')))[:n]


@pytest.fixture
def image_folder(tmp_path):
    """Eight good JPEGs in one class folder, plus helpers to break one of them."""
    folder = tmp_path / 'images' / 'cls'
    folder.mkdir(parents=True)
    for i, src in enumerate(sample_jpegs(8)):
        shutil.copy(src, folder / f'{i:02d}.jpg')
    return folder


def truncate(path, keep=0.5):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])


# --- corrupt images -----------------------------------------------------------------------------

def test_good_image_loads_like_mmcv(image_folder):
    path = str(image_folder / '00.jpg')
    out = StrictLoadImageFromFile()(dict(img_path=path))
    np.testing.assert_array_equal(out['img'], mmcv.imread(path))


@pytest.mark.parametrize('damage', ['truncated', 'garbage', 'empty', 'missing'])
def test_corrupt_image_error_names_the_file(image_folder, damage):
    path = image_folder / '03.jpg'
    if damage == 'truncated':
        truncate(path)
    elif damage == 'garbage':
        path.write_bytes(b'\xff\xd8' + os.urandom(600) + b'\xff\xd9')
    elif damage == 'empty':
        path.write_bytes(b'')
    else:
        path.unlink()
    with pytest.raises(CorruptImageError, match='03.jpg'):
        StrictLoadImageFromFile()(dict(img_path=str(path)))


def test_stock_pillow_loader_does_not_name_the_file(image_folder):
    """Why the strict loader exists: mmcv's loader with Pillow fails without the path."""
    from mmcv.transforms import LoadImageFromFile
    path = image_folder / '03.jpg'
    truncate(path)
    with pytest.raises(OSError) as err:
        LoadImageFromFile(imdecode_backend='pillow')(dict(img_path=str(path)))
    assert '03.jpg' not in str(err.value)
    with pytest.raises(CorruptImageError, match='03.jpg'):
        StrictLoadImageFromFile(imdecode_backend='pillow')(dict(img_path=str(path)))


def build_loader(image_folder, skip_corrupt, num_workers=2):
    dataset = dict(type='CustomDataset', data_root=str(image_folder.parent), with_label=False,
                   pipeline=[dict(type='StrictLoadImageFromFile', skip_corrupt=skip_corrupt),
                             dict(type='PackInputs')])
    loader = dict(batch_size=2, num_workers=num_workers, dataset=dataset,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='default_collate'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Runner.build_dataloader(loader, seed=0)


def test_corrupt_image_in_a_dataloader_worker_names_the_file(image_folder):
    truncate(image_folder / '05.jpg')
    with pytest.raises(CorruptImageError, match=r'05\.jpg'):
        for _ in build_loader(image_folder, skip_corrupt=False):
            pass


def test_skip_corrupt_skips_and_counts_across_workers(image_folder):
    truncate(image_folder / '02.jpg')
    (image_folder / '06.jpg').write_bytes(b'not an image')
    loader = build_loader(image_folder, skip_corrupt=True)
    paths = [p for batch in loader for p in (s.img_path for s in batch['data_samples'])]
    assert len(paths) == 8  # each skipped sample is replaced by another one
    assert not {'02.jpg', '06.jpg'} & {osp.basename(p) for p in paths}
    load = loader.dataset.pipeline.transforms[0]
    assert int(load.num_skipped) == 2  # counted in the worker processes, read in this one


def test_ignore_empty_is_refused():
    with pytest.raises(ValueError, match='skip_corrupt'):
        StrictLoadImageFromFile(ignore_empty=True)


# --- in-process training runs ---------------------------------------------------------------------

@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: far faster than two on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_runner(work_dir, checkpoint: dict, iters: int = 6) -> Runner:
    """The tiny LocalMIM ViT on 24 images, batch 8: 3 iterations an epoch."""
    cfg = Config.fromfile(TINY_VIT_CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.update(batch_size=8, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=osp.join(REPO, 'data', 'sample_cifar'),
                                        indices=24)
    cfg.train_cfg.max_epochs = iters // 3
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.update(checkpoint)
    return Runner.from_cfg(cfg)


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    runner = tiny_runner(tmp_path, dict(by_epoch=False, interval=2, max_keep_ckpts=1))
    model_loss, calls = runner.model.loss, []

    def loss_with_nan_at_5(*args, **kwargs):
        calls.append(1)
        losses = model_loss(*args, **kwargs)
        if len(calls) == 5:
            losses['loss_block3'] = losses['loss_block3'] * float('nan')
        return losses

    runner.model.loss = loss_with_nan_at_5
    with pytest.raises(FloatingPointError, match=r'iteration 5 .*loss_block3=nan') as err:
        runner.train()
    assert 'loss_block1=' in str(err.value)
    # The NaN step did update the weights in memory, but they never reached a checkpoint.
    assert not all(torch.isfinite(p).all() for p in runner.model.parameters())
    assert open(tmp_path / 'last_checkpoint').read() == str(tmp_path / 'iter_4.pth')
    assert sorted(os.listdir(tmp_path)).count('iter_6.pth') == 0
    ckpt = load(tmp_path / 'iter_4.pth')
    assert ckpt['meta']['iter'] == 4
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values())


class FakeRunner:
    iter, epoch = 11, 2


@pytest.mark.parametrize('bad', [float('inf'), float('-inf'), float('nan')])
def test_non_finite_loss_hook_names_iteration_and_terms(bad):
    outputs = dict(loss_block1=torch.tensor(0.5), loss_block3=torch.tensor(bad),
                   loss=torch.tensor(bad))
    with pytest.raises(FloatingPointError, match=rf'iteration 12 \(epoch 3\).*loss_block3={bad}'):
        NonFiniteLossHook().after_train_iter(FakeRunner(), 0, outputs=outputs)
    NonFiniteLossHook().after_train_iter(FakeRunner(), 0, outputs=dict(loss=torch.tensor(1.)))


class Killed(BaseException):
    """Stands for the process being killed while a checkpoint is written."""


def interrupt_second_checkpoint_write(monkeypatch):
    put, writes = LocalBackend.put, []

    def put_then_die(self, obj, filepath):
        writes.append(filepath)
        if len(writes) == 2:  # write half of the second checkpoint, then die
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise Killed(filepath)
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', put_then_die)


@pytest.mark.parametrize('hook', ['AtomicCheckpointHook', 'CheckpointHook'])
def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch, hook):
    runner = tiny_runner(tmp_path, dict(type=hook, by_epoch=False, interval=2, max_keep_ckpts=1))
    interrupt_second_checkpoint_write(monkeypatch)
    with pytest.raises(Killed):
        runner.train()
    pointer = open(tmp_path / 'last_checkpoint').read()
    if hook == 'CheckpointHook':
        # mmengine removes the kept checkpoint before writing the next: nothing good is left.
        assert not osp.exists(tmp_path / 'iter_2.pth')
        with pytest.raises(Exception):
            load(tmp_path / 'iter_4.pth')
        return
    assert pointer == str(tmp_path / 'iter_2.pth')
    assert load(pointer)['meta']['iter'] == 2
    assert not osp.exists(tmp_path / 'iter_4.pth')  # only the .tmp file is half-written
    assert osp.exists(tmp_path / 'iter_4.pth.tmp')


def test_atomic_checkpoints_resume_and_prune(tmp_path):
    """Uninterrupted: same files as CheckpointHook keeps (max_keep_ckpts=2) and no .tmp left."""
    tiny_runner(tmp_path, dict(by_epoch=False, interval=2, max_keep_ckpts=2)).train()
    names = sorted(n for n in os.listdir(tmp_path) if n.endswith(('.pth', '.tmp')))
    assert names == ['iter_4.pth', 'iter_6.pth']
    ckpt = load(tmp_path / 'iter_6.pth')
    assert ckpt['message_hub']['runtime_info']['keep_ckpt_ids'] == [4, 6]
    assert {'ranks', 'mask'} <= set(ckpt['rng_states'])
