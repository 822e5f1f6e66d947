"""Scale-out: workers that die with their launcher, one live run per work dir, mmengine's
FlexibleRunner with FSDP (2 processes, gloo, CPU), compile, and the memory estimate."""
import fcntl
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from mmengine.config import Config

import localmim_mm  # noqa: F401

from .reliability_helpers import REPO, read_losses, run_together, train_env, write_config

LOCALMIM = osp.join(REPO, 'configs', 'localmim')
FSDP_CONFIGS = ['localmim_vit-large-p16_16xb256-fsdp-amp-coslr-800e_in1k.py',
                'localmim_vit-huge-p14_16xb256-fsdp-amp-coslr-800e_in1k.py']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _live_processes(marker: str):
    """{pid: command line} of live (not zombie) processes whose command line holds ``marker``."""
    found = {}
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                cmdline = f.read().replace(b'\0', b' ').decode(errors='replace')
            with open(f'/proc/{pid}/stat') as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != 'Z' and int(pid) != os.getpid():
            found[int(pid)] = cmdline
    return found


def _processes_running(marker: str):
    return list(_live_processes(marker))


def _alive(pid: int) -> bool:
    """Not yet exited (a zombie has closed its files; an exiting process may still hold them,
    and its command line reads empty before its files are closed)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def _wait_for(predicate, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f'timed out after {timeout} s waiting for {what}')


def _log_text(work_dir) -> str:
    texts = []
    for root, _, files in os.walk(work_dir):
        texts += [open(osp.join(root, f)).read() for f in files if f.endswith('.log')]
    return '\n'.join(texts)


# ------------------------------------------------------------------ 2. kills and work-dir lock
LONG_RUN = """
    train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                            dataset=dict(indices=16))
    train_cfg = dict(max_epochs=1000)
    default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1000))
    """


def _workers(config):
    """The training processes of ``config`` (not the launcher or a shell)."""
    return [pid for pid, cmdline in _live_processes(config).items()
            if 'torch.distributed.run' not in cmdline and 'dist_train.sh' not in cmdline]


def test_kill_9_of_the_launcher_process_group_stops_every_worker(tmp_path):
    """tools/dist_train.sh (2 gloo processes) killed with SIGKILL on its process group once the
    workers train: both workers stop within seconds (they run in sessions of their own)."""
    config = write_config(tmp_path / 'long_run.py', LONG_RUN)
    work_dir = tmp_path / 'work'
    env = dict(train_env(), PORT=str(free_port()), PYTHON=sys.executable)
    launcher = subprocess.Popen(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, '2', '--work-dir',
         str(work_dir)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        _wait_for(lambda: 'Epoch(train)' in _log_text(work_dir), 240, 'the first iterations')
        workers = _workers(config)
        assert len(workers) == 2, workers
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=30)
        _wait_for(lambda: not any(map(_alive, workers)), 30, 'the workers to stop')
        assert not _processes_running(config)
    finally:
        for pid in _processes_running(config):
            os.kill(pid, signal.SIGKILL)


def test_a_live_run_holds_its_work_dir_and_a_dead_one_does_not(tmp_path):
    """While a run trains, a second tools/train.py in its work dir (e.g. --resume) is refused
    naming the live run's PID; after kill -9 of the live run the work dir is free again."""
    config = write_config(tmp_path / 'long_run.py', LONG_RUN)
    work_dir = tmp_path / 'work'
    first = subprocess.Popen([sys.executable, 'tools/train.py', config, '--work-dir',
                              str(work_dir)], cwd=REPO, env=train_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: 'Epoch(train)' in _log_text(work_dir), 240, 'the first iterations')
        second = subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir',
                                 str(work_dir), '--resume'], cwd=REPO, env=train_env(),
                                capture_output=True, text=True, timeout=120)
        assert second.returncode != 0
        assert f'is in use by a live training run (PID {first.pid} on ' in second.stderr
        first.kill()
        first.wait(timeout=30)
        with open(work_dir / '.train.lock', 'a') as f:  # the kernel dropped the dead run's lock
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        first.kill()
        for pid in _processes_running(config):
            os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------ 4. FlexibleRunner + FSDP
RUNNER_RECORDER = '''
import json, os.path as osp
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module(force=True)
class RunnerRecorderHook(Hook):
    def before_train(self, runner):
        with open(osp.join(runner.work_dir, f'runner_rank{get_rank()}.json'), 'w') as f:
            json.dump(dict(runner=type(runner).__name__, model=type(runner.model).__name__), f)
'''
FSDP_BODY = """
    custom_imports = dict(imports=['localmim_mm', 'tests.reliability_helpers',
                                   'runner_recorder'], allow_failed_imports=False)
    custom_hooks = [dict(type='LossRecorderHook'), dict(type='RunnerRecorderHook')]
    runner_type = 'FlexibleRunner'
    strategy = dict(type='FSDPStrategy', state_dict_cfg='full',
                    model_wrapper=dict(auto_wrap_policy=dict(type='vit_block_wrap_policy')))
    """
SMALL = """
    train_dataloader = dict(batch_size={batch}, num_workers=0, persistent_workers=False,
                            dataset=dict(indices=32))
    train_cfg = dict(max_epochs=1)
    default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
    randomness = dict(seed=5, diff_rank_seed=True)
    """


def test_fsdp_two_processes_train_like_one_process_with_double_batch(tmp_path):
    """runner_type='FlexibleRunner' + FSDPStrategy through tools/dist_train.sh: the workers run
    a FlexibleRunner over an FSDP-wrapped model, and the mean of the two ranks' losses equals the
    1-process loss at twice the batch (docs/guarantees.md: same data order and masks); the
    checkpoint holds the full, unsharded state dict."""
    (tmp_path / 'runner_recorder.py').write_text(RUNNER_RECORDER)
    single = write_config(tmp_path / 'single.py', SMALL.format(batch=16))
    fsdp = write_config(tmp_path / 'fsdp.py', SMALL.format(batch=8) + FSDP_BODY)
    env = dict(train_env(), PYTHONPATH=f'{REPO}:{tmp_path}')
    single_cmd = [sys.executable, 'tools/train.py', single, '--work-dir', str(tmp_path / 'single')]
    run_together((single_cmd, env),
                 (['bash', 'tools/dist_train.sh', fsdp, '2', '--work-dir', str(tmp_path / 'fsdp')],
                  dict(env, PORT=str(free_port()), PYTHON=sys.executable)))

    for rank in (0, 1):
        with open(tmp_path / 'fsdp' / f'runner_rank{rank}.json') as f:
            assert json.load(f) == dict(runner='FlexibleRunner',
                                        model='MMFullyShardedDataParallel')
    one = read_losses(tmp_path / 'single')
    ranks = [read_losses(tmp_path / 'fsdp', rank) for rank in (0, 1)]
    assert sorted(one) == sorted(ranks[0]) == [1, 2]
    for term in one[1]:
        expected = np.array([one[it][term] for it in (1, 2)])
        got = np.array([(ranks[0][it][term] + ranks[1][it][term]) / 2 for it in (1, 2)])
        np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=term)
    full = torch.load(tmp_path / 'fsdp' / 'epoch_1.pth', weights_only=True)['state_dict']
    plain = torch.load(tmp_path / 'single' / 'epoch_1.pth', weights_only=True)['state_dict']
    assert sorted(full) == sorted(plain)
    assert all(full[k].shape == plain[k].shape for k in plain)


@pytest.mark.parametrize('name', FSDP_CONFIGS)
def test_fsdp_recipes_shard_every_block(name):
    """The recipes name the FlexibleRunner and FSDP, and the wrap policy makes one unit of each
    encoder block, decoder and decoder block (counted on a meta-device build)."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from localmim_mm.analysis.memory import fsdp_units
    cfg = Config.fromfile(osp.join(LOCALMIM, name))
    assert cfg.runner_type == 'FlexibleRunner' and cfg.strategy.type == 'FSDPStrategy'
    assert cfg.strategy.state_dict_cfg == 'full'
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    init_default_scope('mmpretrain')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    root, units = fsdp_units(model)
    depth = len(model.backbone.layers)
    assert len(units) == depth + 2 * len(model.head.decoders)
    block = sum(p.numel() for p in model.backbone.layers[0].parameters())
    assert max(units) == block
    assert root + sum(units) == sum(p.numel() for p in model.parameters())


def test_vit_huge_recipe_follows_the_release_architecture():
    cfg = Config.fromfile(osp.join(LOCALMIM, FSDP_CONFIGS[1]))
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    backbone = model.backbone
    assert (backbone.embed_dims, len(backbone.layers), backbone.patch_resolution) == \
        (1280, 32, (16, 16))
    assert backbone.layers[0].attn.num_heads == 16
    assert list(backbone.out_indices) == [1, 3, 29, 31]
    decoder = model.head.decoders[0]
    assert decoder.embed.out_features == 256 and len(decoder.blocks) == 1
    # every target cell is a whole number of pixels: 14 px patches at scales 2 / 2 / 1 / 0.5
    assert [14 / s for s in model.head.scales] == model.target_generator.cell_sizes == \
        [7, 7, 14, 28]


def test_compile_reaches_the_runner(tmp_path):
    """``compile`` in the config (here the eager backend, which needs no compiler) makes the
    runner compile the train step; the losses equal the uncompiled run's."""
    body = """
        train_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                                dataset=dict(indices=16))
        train_cfg = dict(max_epochs=1)
        default_hooks = dict(logger=dict(interval=1))
        """
    plain = write_config(tmp_path / 'plain.py', body)
    compiled = write_config(tmp_path / 'compiled.py', body + "compile = dict(backend='eager')\n")
    _, compiled_output = run_together(
        ([sys.executable, 'tools/train.py', plain, '--work-dir', str(tmp_path / 'plain')],
         train_env()),
        ([sys.executable, 'tools/train.py', compiled, '--work-dir', str(tmp_path / 'compiled')],
         train_env()))
    assert 'Model has been "compiled"' in compiled_output
    a, b = read_losses(tmp_path / 'plain'), read_losses(tmp_path / 'compiled')
    assert sorted(a) == sorted(b) == [1, 2]
    for it in a:
        assert b[it]['loss'] == pytest.approx(a[it]['loss'], rel=1e-5)


def test_the_compile_recipe_is_the_base_recipe_with_compile():
    base = Config.fromfile(osp.join(
        LOCALMIM, 'localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py'))
    compiled = Config.fromfile(osp.join(
        LOCALMIM, 'localmim_vit-base-p16_8xb256-amp-compile-coslr-1600e_in1k.py'))
    assert compiled.compile is True and 'compile' not in base
    assert compiled.model == base.model and compiled.optim_wrapper == base.optim_wrapper


# ------------------------------------------------------------------ memory estimate
def test_saved_activations_are_counted_as_by_hand():
    """Linear(8, 16) -> GELU -> Linear(16, 4) on a batch of 5 in float32 saves the first input
    (5x8), GELU's input (5x16) and the second input (5x16): 5 * 40 * 4 bytes; weights excluded;
    a tensor saved by two ops counts once."""
    from localmim_mm.analysis.memory import saved_activation_bytes
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))
    x = torch.randn(5, 8, requires_grad=True)
    assert saved_activation_bytes(model, lambda: model(x), amp=False) == 5 * 40 * 4
    y = torch.randn(5, 8, requires_grad=True)
    assert saved_activation_bytes(model, lambda: (y * y).sum(), amp=False) == 5 * 8 * 4


def test_model_state_bytes_per_strategy():
    from localmim_mm.analysis.memory import model_state_bytes
    ddp = model_state_bytes(1000, 'DDP', 8)
    assert sum(ddp.values()) == 20 * 1000
    fsdp = model_state_bytes(1000, 'FSDP', 4, root_params=100, largest_unit=50)
    assert fsdp['weights'] + fsdp['gradients'] + fsdp['adamw'] == 16 * 1000 / 4
    assert fsdp['strategy_buffers'] == 8 * (100 + 2 * 50)


def test_the_committed_memory_table_matches_the_configs():
    """docs/results/memory_estimate.json was computed from today's configs: the same parameter
    counts and batches, and totals that add up."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    with open(osp.join(REPO, 'docs', 'results', 'memory_estimate.json')) as f:
        results = json.load(f)
    init_default_scope('mmpretrain')
    for result in results:
        cfg = Config.fromfile(osp.join(REPO, result['config']))
        try:
            with torch.device('meta'):
                model = MODELS.build(cfg.model)
        except RuntimeError:  # a constructor that calls .item() (Swin)
            model = MODELS.build(cfg.model)
        assert result['trainable_params'] == sum(
            p.numel() for p in model.parameters() if p.requires_grad), result['config']
        assert result['batch_per_gpu'] == cfg.train_dataloader.batch_size
        gib = result['per_gpu_gib']
        assert gib['total'] == pytest.approx(sum(v for k, v in gib.items() if k != 'total'))
        assert result['activation_bytes_per_image'] > 0
