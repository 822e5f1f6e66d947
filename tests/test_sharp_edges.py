"""Issue 27, "nothing silent, nothing late": one test (or two) per sharp edge a new user met.

1. run length travels with the checkpoint; a ``--resume`` its schedule cannot serve is refused;
2. ``--epochs 1`` (and 2 / 3 at half the iterations per epoch) works on the tiny recipes;
3. misspelled ``--cfg-options`` keys are refused with the closest key;
4. the tools end with one line; shape rules are checked when the model is built;
5. a wrong-architecture checkpoint gives one bounded summary with the likely cause;
6. an all-corrupt image folder stops early; launch scripts print usage; re-publishing;
7. the committed memory table matches what its tool computes.
New APIs are imported inside the tests, so that each test fails on its own.
"""
import argparse
import importlib.util
import json
import logging
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

import localmim_mm  # noqa: F401

from .conftest import REPO, TINY_VIT_CONFIG, train

LOMAR_CONFIG = osp.join(REPO, 'configs', 'lomar', 'lomar_vit-tiny-p8_1xb32-coslr-20e_sample.py')
OWN_IMAGES_CONFIG = osp.join(REPO, 'configs', 'localmim',
                             'localmim_vit-tiny-p8_1xb32-coslr-20e_own-images.py')
SAMPLE_IMAGES = osp.join(REPO, 'data', 'sample_cifar', 'train')
# 64 images at batch 32: 2 iterations an epoch
TWO_ITERATIONS = ['train_dataloader.dataset.indices=64', 'train_dataloader.num_workers=0',
                  'train_dataloader.persistent_workers=False']


def run(args, **kwargs):
    # mmengine imports pkg_resources for `mmpretrain::` configs; its deprecation warning (from
    # the installed setuptools) is not a line of ours
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1',
               PYTHONWARNINGS='ignore:pkg_resources is deprecated:UserWarning')
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          **kwargs)


def load_tool(path):
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(path))[0],
                                                  osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# 1. Run length -------------------------------------------------------------------------------

def test_resume_of_a_finished_short_run_without_epochs_is_refused(tmp_path):
    """``--epochs 1`` (2 iterations; its warm-up of 0.1 epoch has none and is dropped), then
    ``--resume`` without ``--epochs``: the config's 20 epochs lie past the saved schedule's end
    (iteration 2), so the resume is refused with the command for a new 20-epoch run, and nothing
    trains (it used to train 19 epochs at the final lr, silently)."""
    work = tmp_path / 'run'
    proc = train(TINY_VIT_CONFIG, work, '--epochs', '1', '--cfg-options', *TWO_ITERATIONS)
    assert 'LinearLR spans iterations 0..0 of this run (2 iterations, 2 per epoch)' in proc.stdout
    ckpt = work / 'epoch_1.pth'
    meta = torch.load(ckpt, map_location='cpu', weights_only=True)['meta']
    assert meta['run_length'] == {'max_epochs': 1, 'max_iters': 2, 'schedule_end_iter': 2}

    resumed = run([sys.executable, 'tools/train.py', TINY_VIT_CONFIG, '--work-dir', str(work),
                   '--resume', '--cfg-options', *TWO_ITERATIONS])
    assert resumed.returncode == 1, resumed.stdout[-2000:]
    said = resumed.stderr
    assert (f'{ckpt} belongs to a run of 1 epochs (finished all 1), but this command asks for '
            "20: its lr schedule ends at epoch 1, so every epoch after it would train at the "
            "schedule's final lr") in said
    assert f'--epochs 20 --work-dir NEW_WORK_DIR --cfg-options load_from={ckpt}' in said
    assert 'Epoch(train)' not in resumed.stdout
    assert not osp.exists(work / 'epoch_2.pth')


def _checkpoint(path, epoch, max_epochs, schedule_end_epoch, per_epoch=10):
    meta = dict(epoch=epoch, iter=epoch * per_epoch, run_length=dict(
        max_epochs=max_epochs, max_iters=max_epochs * per_epoch,
        schedule_end_iter=schedule_end_epoch * per_epoch))
    torch.save({'meta': meta, 'state_dict': {}}, path)
    return str(path)


def test_resume_length_against_the_saved_schedule(tmp_path):
    """In-process, on checkpoints of known meta: a 6-epoch run (schedule to epoch 6) at epoch 3."""
    from localmim_mm.runtime.checkpoints.resume_length import check_resume_length
    ckpt = _checkpoint(tmp_path / 'epoch_3.pth', 3, 6, 6)
    cfg = Config(dict(train_cfg=dict(max_epochs=20), resume=True, load_from=ckpt,
                      work_dir=str(tmp_path)))
    argv = ['CFG.py', '--resume', '--cfg-options', 'a=1']
    with pytest.raises(SystemExit) as refused:  # the config's 20 epochs: past the schedule
        check_resume_length(cfg, 'CFG.py', argv)
    said = str(refused.value.code)
    assert 'a run of 6 epochs (at 3 of 6)' in said and 'ends at epoch 6' in said
    assert (f'python tools/train.py CFG.py --cfg-options a=1 --work-dir {tmp_path} --resume '
            f'{ckpt} --epochs 6') in said
    assert (f'python tools/train.py CFG.py --cfg-options a=1 --epochs 20 --work-dir NEW_WORK_DIR '
            f'--cfg-options load_from={ckpt}') in said
    cfg.train_cfg.max_epochs = 5  # --epochs 5 (shorter, inside the schedule): still a rescale
    with pytest.raises(SystemExit, match='--epochs 5 would rescale a schedule'):
        check_resume_length(cfg, 'CFG.py', argv + ['--epochs', '5'], epochs_option=5)
    cfg.train_cfg.max_epochs = 6  # the run's own length: resumes
    check_resume_length(cfg, 'CFG.py', argv)
    # A run cut short inside its schedule (max_epochs=2 of a 20-epoch cosine) continues to 3.
    cfg.load_from = _checkpoint(tmp_path / 'epoch_2.pth', 2, 2, 20)
    cfg.train_cfg.max_epochs = 3
    check_resume_length(cfg, 'CFG.py', argv)
    cfg.train_cfg.max_epochs = 2  # finished: says so and stops with exit status 0
    with pytest.raises(SystemExit) as finished:
        check_resume_length(cfg, 'CFG.py', argv)
    assert finished.value.code == 0


# 2. Short runs -------------------------------------------------------------------------------

def _iterations_per_epoch(cfg) -> int:
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS
    init_default_scope('mmpretrain')
    loader = cfg.train_dataloader
    return math.ceil(len(DATASETS.build(loader.dataset)) / loader.batch_size)


@pytest.mark.parametrize('config, epochs, batch', [
    (TINY_VIT_CONFIG, 1, 32),     # 300 images: 10 iterations, warm-up 0.1 epoch = 0..1
    (LOMAR_CONFIG, 1, 32),
    (OWN_IMAGES_CONFIG, 1, 32),
    (TINY_VIT_CONFIG, 2, 64),     # as 2 processes x 32: 5 iterations an epoch, warm-up 0..1
    (TINY_VIT_CONFIG, 3, 64),
])
def test_short_runs_train_every_iteration_on_a_valid_schedule(config, epochs, batch):
    """The schedules of ``--epochs`` runs too short for their warm-up build (mmengine's own
    schedulers, stepped over the whole run): the warm-up collapses to none, so the first
    iteration trains at the peak lr and the lr then never rises."""
    from types import SimpleNamespace

    from mmengine.optim import OptimWrapper
    from mmengine.registry import PARAM_SCHEDULERS

    from localmim_mm.runtime.cli.schedule import fit_schedule_to_run, set_epochs
    cfg = Config.fromfile(config)
    if config == OWN_IMAGES_CONFIG:
        cfg.train_dataloader.dataset.data_root = SAMPLE_IMAGES
    cfg.train_dataloader.batch_size = batch
    set_epochs(cfg, epochs)
    per_epoch = _iterations_per_epoch(cfg)
    runner = SimpleNamespace(param_schedulers=cfg.param_scheduler, max_epochs=epochs,
                             max_iters=epochs * per_epoch, train_dataloader=range(per_epoch))
    fit_schedule_to_run(runner)
    peak = 1e-3
    optimizer = OptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak))
    schedulers = [PARAM_SCHEDULERS.build(s, default_args=dict(optimizer=optimizer,
                                                              epoch_length=per_epoch))
                  for s in runner.param_schedulers]
    lrs = []
    for _ in range(runner.max_iters):
        lrs.append(optimizer.param_groups[0]['lr'])
        for scheduler in schedulers:
            scheduler.step()
    assert lrs[0] == pytest.approx(peak)
    assert all(b <= a + 1e-12 for a, b in zip(lrs, lrs[1:])) and lrs[-1] < peak


# 3. --cfg-options keys -----------------------------------------------------------------------

@pytest.mark.parametrize('key, closest', [
    ('train_dataloder.batch_size', "'train_dataloader'"),
    ('train_dataloader.batch_szie', "'batch_size'"),
    ('model.backbone.mask_ratoi', "'mask_ratio'"),
    ('default_hooks.checkpoint.intervl', "'interval'"),
])
def test_misspelled_cfg_options_keys_are_refused(key, closest):
    """tools/train.py's merge of --cfg-options, in-process; keys that are right but absent from
    the config (a constructor argument, a Runner argument, a new hook) pass."""
    tool = load_tool('tools/train.py')
    args = argparse.Namespace(config=TINY_VIT_CONFIG, cfg_options={key: 8}, epochs=None,
                              work_dir='w', resume=None, no_validate=False, auto_scale_lr=False,
                              no_pin_memory=False, no_persistent_workers=False)
    with pytest.raises(SystemExit, match=f'{key}=...: .* no key .*; did you mean {closest}'):
        tool.merge_args(Config.fromfile(TINY_VIT_CONFIG), args)
    args.cfg_options = {'model.backbone.drop_path_rate': 0.1, 'load_from': 'x.pth',
                        'train_dataloader.prefetch_factor': 2, 'param_scheduler.1.end': 20,
                        'default_hooks.extra': dict(type='EMAHook')}
    cfg = tool.merge_args(Config.fromfile(TINY_VIT_CONFIG), args)
    assert cfg.model.backbone.drop_path_rate == 0.1


def test_test_tool_refuses_a_misspelled_key_in_one_line(tmp_path):
    config = osp.join(REPO, 'configs', 'benchmarks', 'classification',
                      'vit-tiny-p8_1xb32-coslr-20e_sample.py')
    proc = run([sys.executable, 'tools/test.py', config, str(tmp_path / 'none.pth'),
                '--cfg-options', 'test_dataloader.dataset.data_roots=/data'])
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "--cfg-options test_dataloader.dataset.data_roots=...: test_dataloader.dataset has no "
        "key 'data_roots'; did you mean 'data_root'?"]


# 4. One clear line, at build time ------------------------------------------------------------

def test_missing_config_and_validation_error_are_one_line(tmp_path):
    typo = TINY_VIT_CONFIG.replace('_sample.py', '_sampel.py')
    proc = run([sys.executable, 'tools/train.py', typo, '--work-dir', str(tmp_path / 'a')])
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f'config file {typo!r} does not exist; did you mean '
        f'{osp.relpath(TINY_VIT_CONFIG, REPO)} or configs/localmim/'
        'localmim_swin-tiny_1xb32-coslr-20e_sample.py?']
    # 72 px is a multiple of the patch (8) but not of the largest target cell (16)
    proc = run([sys.executable, 'tools/train.py', TINY_VIT_CONFIG, '--work-dir',
                str(tmp_path / 'b'), '--cfg-options', 'model.backbone.img_size=72',
                'train_dataloader.dataset.pipeline.1.scale=72', *TWO_ITERATIONS])
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ValueError: LocalMIM: backbone '
                                                   'img_size=(72, 72) is not divisible by')
    assert 'Epoch(train)' not in proc.stdout and 'Traceback' in open(
        lines[0].rsplit('traceback in ', 1)[1].rstrip(')')).read()


def test_cell_size_rule_is_checked_when_the_model_is_built():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    model = Config.fromfile(TINY_VIT_CONFIG).model  # cells 2, 4, 8, 16 px; patch 8
    model.backbone.img_size = 72  # 72 = 9 x 8 = 4.5 x 16: the 16-px cells do not tile it
    with pytest.raises(ValueError, match=r'img_size=\(72, 72\) is not divisible by target_'
                       r'generator.cell_sizes\[3\]=16 px.*e\.g\. img_size=\(64, 64\)'):
        MODELS.build(model)
    model.backbone.img_size = 80  # 5 x 16: builds
    MODELS.build(model)


# 5. Wrong-architecture checkpoints -----------------------------------------------------------

TINY_ARCH = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)
VIT = dict(type='LocalMIMViT', img_size=32, patch_size=8, arch=TINY_ARCH, out_indices=[0, 1, 2, 3])
SWIN = dict(type='mmpretrain.SwinTransformer', img_size=32, window_size=2,
            arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]))


def _saved(cfg, path):
    from mmpretrain.registry import MODELS
    state = MODELS.build(cfg).state_dict()
    torch.save({'state_dict': state}, path)
    return str(path), state


@pytest.mark.parametrize('source, cause', [
    (dict(VIT, arch=dict(TINY_ARCH, embed_dims=96, feedforward_channels=192)),
     'another width: the file has 96 channels where the model has 64'),
    (SWIN, 'another architecture'),
])
def test_wrong_architecture_gives_one_bounded_summary(tmp_path, source, cause):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    from localmim_mm.transfer import load_pretrained
    path, file_state = _saved(source, tmp_path / 'other.pth')
    model = MODELS.build(VIT)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    same_names = [k for k in before if k in file_state]
    reshaped = [k for k in same_names if file_state[k].shape != before[k].shape]
    with pytest.raises(ValueError) as err:
        load_pretrained(model, path)
    text = str(err.value)
    assert len(text.splitlines()) <= 4  # 99 + 99 lines for a ViT-B pair before
    assert (f'{len(same_names) - len(reshaped)} of {len(before)} tensors match, '
            f'{len(before) - len(same_names)} are missing from the file') in text
    assert f'{len(reshaped)} have another shape' in text and cause in text
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # unchanged
    # Through init_cfg (as the tools load it): the same summary, not chained to torch's list.
    model = MODELS.build(dict(VIT, init_cfg=dict(type='LoudPretrained', checkpoint=path)))
    with pytest.raises(ValueError) as err:
        model.init_weights()
    assert str(err.value) == text
    assert err.value.__cause__ is None and err.value.__context__ is None  # printed once


# 6. Smaller edges ----------------------------------------------------------------------------

def test_all_corrupt_folder_stops_early_with_one_message(tmp_path):
    from mmengine.logging import MMLogger

    from localmim_mm.datasets import CorruptImageError, UnlabeledImageFolder
    folder = tmp_path / 'photos'
    folder.mkdir()
    for i in range(20):
        (folder / f'{i}.jpg').write_bytes(b'\xff\xd8 not a jpeg')  # no end marker
    dataset = UnlabeledImageFolder(str(folder), pipeline=[
        dict(type='StrictLoadImageFromFile', skip_corrupt=True)])
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    # A logger of its own, made the current one at INFO: an earlier test of the same worker may
    # have left a current logger at another level.
    logger = MMLogger.get_instance(f'corrupt_folder_{id(records)}', log_level='INFO')
    logger.addHandler(handler)
    try:
        with pytest.raises(CorruptImageError,
                           match=f'50 images in a row could not be read, under {folder} '
                                 r'\(50 corrupt images skipped in all\)'):
            dataset[0]
    finally:
        logger.removeHandler(handler)
    assert sum('skipped corrupt image' in r.getMessage() for r in records) == 10


@pytest.mark.parametrize('script, needed', [
    ('dist_train.sh', 2), ('dist_test.sh', 3), ('slurm_train.sh', 4)])
def test_launch_scripts_without_arguments_print_usage(script, needed):
    for given in range(needed):
        proc = run(['bash', f'tools/{script}', *['x'] * given])
        assert proc.returncode == 2
        assert proc.stderr.startswith('usage: ') and f'tools/{script} ' in proc.stderr
        assert f'({needed} arguments needed, {given} given)' in proc.stderr
        assert 'unbound variable' not in proc.stderr and not proc.stdout


def test_publishing_a_published_file_says_so(tmp_path, capsys):
    tool = load_tool('tools/model_converters/publish_model.py')
    runner_file = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'backbone.w': torch.ones(2)}, 'meta': {'cfg': 'x = 1', 'epoch': 1},
                'optimizer': {'state': {}}}, runner_file)
    published = tool.publish(str(runner_file), str(tmp_path / 'model.pth'))
    before = sorted(os.listdir(tmp_path))
    again = tool.publish(published, str(tmp_path / 'model_again.pth'))
    out = capsys.readouterr().out.strip().splitlines()
    assert again == published and out[-1] == published
    assert 'is already a published checkpoint (published from epoch_1.pth' in out[-2]
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


# 7. Committed figures ------------------------------------------------------------------------

def test_committed_memory_table_matches_its_tool():
    """Recomputes the ViT-B and Swin-B rows (the two that had drifted) and checks every row of
    the markdown table and the figures quoted in docs/scale_out.md against the committed JSON."""
    from localmim_mm.analysis.memory import recipe_memory
    committed = json.load(open(osp.join(REPO, 'docs', 'results', 'memory_estimate.json')))
    rows = {(r['config'], r['strategy']): r for r in committed}
    for config in ('configs/localmim/localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py',
                   'configs/localmim/localmim_swin-base-w7_8xb256-amp-coslr-400e_in1k.py'):
        cwd = os.getcwd()
        os.chdir(REPO)
        try:
            fresh = recipe_memory(config)
        finally:
            os.chdir(cwd)
        saved = rows[(config, 'DDP')]
        for key in ('trainable_params', 'activation_bytes_per_image', 'activation_bytes_fixed',
                    'batch_per_gpu', 'gpus'):
            assert fresh[key] == saved[key], (config, key)
        for key, value in fresh['per_gpu_gib'].items():
            assert value == pytest.approx(saved['per_gpu_gib'][key], rel=1e-9), (config, key)
    tool = load_tool('tools/analysis_tools/memory_estimate.py')
    markdown = open(osp.join(REPO, 'docs', 'results', 'memory_estimate.md')).read()
    assert tool.table(committed) in markdown
    scale_out = open(osp.join(REPO, 'docs', 'scale_out.md')).read()
    for r in committed:
        assert f'{r["per_gpu_gib"]["total"]:.1f} GiB |' in scale_out, r['config']
