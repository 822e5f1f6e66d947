"""RepresentationMonitorHook: k-NN of the training encoder, the same with 1 or 2 processes,
equal to an offline evaluation of the checkpoint, and invisible to training (as are the live
reconstructions drawn in the same runs)."""
import glob
import json
import os.path as osp
import random
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from localmim_mm.engine import guard_training_state
from localmim_mm.evaluation import extract_features, knn_accuracy, load_image_folder

from .reliability_helpers import REPO, read_losses, run_together, train_env, write_config
from .test_reliability_distributed import free_port

SAMPLE = osp.join(REPO, 'data', 'sample_cifar')
BODY = """
    train_dataloader = dict(batch_size={batch}, num_workers={workers}, persistent_workers=True,
                            dataset=dict(indices=64))
    train_cfg = dict(max_epochs=2)
    default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
    randomness = dict(seed=5, diff_rank_seed=True)
    custom_hooks = [dict(type='LossRecorderHook')] + {monitor}
    """
LIVE_HOOKS = [dict(type='RepresentationMonitorHook', data_root=SAMPLE, per_class=10, k=10,
                   by_epoch=False, interval=3),  # checks at iterations 0, 3, 6, 8 (the last)
              dict(type='LiveReconstructionHook', images=osp.join(SAMPLE, 'val', 'cat'),
                   max_images=1)]  # drawn after epochs 1 and 2


def monitor_values(work_dir) -> dict:
    """{iteration: k-NN top-1} of the latest run in ``work_dir``."""
    scalars = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))[-1]
    with open(scalars) as f:
        records = [json.loads(line) for line in f]
    return {r['step']: r['monitor/knn_top1'] for r in records if 'monitor/knn_top1' in r}


def train_cmd(config, work_dir):
    return [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir',
            str(work_dir)]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """The same 8 iterations: 1 process batch 16 with and without the monitor and the live
    reconstructions, 2 processes batch 8 with them."""
    tmp = tmp_path_factory.mktemp('monitor')
    configs = {name: write_config(tmp / f'{name}.py', BODY.format(**fmt)) for name, fmt in dict(
        single=dict(batch=16, workers=2, monitor=LIVE_HOOKS),
        plain=dict(batch=16, workers=2, monitor=[]),
        dist=dict(batch=8, workers=1, monitor=LIVE_HOOKS)).items()}
    env = dict(train_env(), PORT=str(free_port()), PYTHON=sys.executable)
    run_together((train_cmd(configs['single'], tmp / 'single'), train_env()),
                 (train_cmd(configs['plain'], tmp / 'plain'), train_env()),
                 (['bash', osp.join(REPO, 'tools', 'dist_train.sh'), configs['dist'], '2',
                   '--work-dir', str(tmp / 'dist')], env))
    return tmp


def test_two_processes_log_the_knn_of_one_process_with_double_batch(runs):
    single, dist = monitor_values(runs / 'single'), monitor_values(runs / 'dist')
    assert sorted(single) == [0, 3, 6, 8]
    assert dist == single


def test_knn_equals_an_offline_evaluation_of_the_checkpoint(runs):
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(runs / 'single.py')
    model = MODELS.build(cfg.model)
    state = torch.load(runs / 'single' / 'epoch_2.pth', map_location='cpu',
                       weights_only=True)['state_dict']
    model.load_state_dict(state)
    bank, bank_labels, _ = load_image_folder(SAMPLE, 'train', 64, per_class=10)
    query, query_labels, _ = load_image_folder(SAMPLE, 'val', 64, per_class=10)
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]  # RGB, the config's
    feats = [extract_features(model.backbone, x, mean, std) for x in (bank, query)]
    expected = 100 * knn_accuracy(feats[0], bank_labels, feats[1], query_labels, k=10)
    assert monitor_values(runs / 'single')[8] == pytest.approx(expected, abs=1e-4)


def test_reconstructions_are_drawn_by_rank_0_as_pngs_under_the_work_dir(runs):
    for name in ('single', 'dist'):
        pngs = sorted(glob.glob(osp.join(runs, name, '*', 'vis_data', 'vis_image', '*.png')))
        assert [osp.basename(p) for p in pngs] == ['reconstruction_cat_0000_1.png',
                                                   'reconstruction_cat_0000_2.png'], name


def test_monitor_and_reconstructions_leave_training_unchanged(runs):
    with_monitor, without = read_losses(runs / 'single'), read_losses(runs / 'plain')
    assert with_monitor == without  # every loss term of every iteration, bit for bit
    weights = [torch.load(runs / name / 'epoch_2.pth', map_location='cpu',
                          weights_only=True)['state_dict'] for name in ('single', 'plain')]
    for key, value in weights[1].items():
        assert torch.equal(weights[0][key], value), key


def test_guard_restores_random_states_and_modes():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout())
    model.train()
    model[1].eval()  # a mixed state must come back as it was
    model[0].mask_generator = generator = torch.Generator().manual_seed(7)
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    expected = (torch.rand(3), np.random.rand(3), random.random(),
                torch.rand(3, generator=torch.Generator().manual_seed(7)))
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    with guard_training_state(model) as inner:
        assert not inner.training and not inner[0].training
        torch.rand(5), np.random.rand(5), random.random(), torch.rand(5, generator=generator)
        inner[0].mask_generator = None
        assert not torch.is_grad_enabled()
    assert model[0].mask_generator is generator
    got = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=generator))
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert model.training and model[0].training and not model[1].training


def test_swin_encoder_and_linear_probe_in_a_stub_runner(tmp_path):
    """A pyramid encoder (pooled last stage) and the linear probe, whose classifier creation
    would draw from the global RNG if it were not guarded."""
    from types import SimpleNamespace
    from mmengine.logging import MessageHub
    from mmengine.visualization import Visualizer
    from mmpretrain.registry import MODELS
    from localmim_mm.engine import RepresentationMonitorHook
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'localmim',
                                   'localmim_swin-tiny_1xb32-coslr-20e_sample.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    runner = SimpleNamespace(
        model=model, iter=0, epoch=0, max_epochs=3,
        message_hub=MessageHub.get_instance('monitor_swin_test'),
        visualizer=Visualizer.get_instance('monitor_swin_test', save_dir=str(tmp_path),
                                           vis_backends=[dict(type='LocalVisBackend')]))
    hook = RepresentationMonitorHook(data_root=SAMPLE, per_class=3, k=5, linear_probe=True,
                                     probe_epochs=3)
    rng = torch.get_rng_state()
    hook.before_train(runner)  # the initial check
    assert torch.equal(torch.get_rng_state(), rng) and model.training
    scores = {k: runner.message_hub.get_scalar(f'monitor/{k}').current()
              for k in ('knn_top1', 'linear_top1')}
    bank, bank_labels, _ = load_image_folder(SAMPLE, 'train', 128, per_class=3)
    query, query_labels, _ = load_image_folder(SAMPLE, 'val', 128, per_class=3)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    with torch.no_grad():
        model.eval()
        feats = [model.backbone((x.float() - mean) / std, mask=None)[-1].mean(dim=(2, 3))
                 for x in (bank, query)]
    expected = 100 * knn_accuracy(feats[0], bank_labels, feats[1], query_labels, k=5)
    assert scores['knn_top1'] == pytest.approx(expected, abs=1e-3)
    assert 0 <= scores['linear_top1'] <= 100


@pytest.mark.parametrize('kwargs, message', [
    (dict(interval=0), 'interval=0 must be an integer >= 1'),
    (dict(k=0), 'k=0'),
    (dict(temperature=0), 'temperature=0'),
])
def test_bad_monitor_settings_are_refused(kwargs, message):
    from localmim_mm.engine import RepresentationMonitorHook
    with pytest.raises(ValueError, match=message):
        RepresentationMonitorHook(data_root=SAMPLE, **kwargs)
