"""A SIGKILLed, resumed pre-training run continues exactly like the uninterrupted run.

The run crosses epoch boundaries with two persistent dataloader workers, is checkpointed by
iteration (so it is resumed in the middle of an epoch) and trains with random masks and random
augmentation: everything mmengine 0.10.7 alone would not restore (see docs/guarantees.md). The
representation monitor runs every 2 iterations (at the killed checkpoint too): it must not
disturb any of this.
"""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

from .reliability_helpers import REPO, read_losses, start, train_env, wait_all, write_config
from .test_monitor import monitor_values

ITERS_PER_EPOCH, EPOCHS, CKPT_INTERVAL = 4, 3, 3  # 64 images, batch 16; kill after iter 6
CONFIG_BODY = f"""
    train_dataloader = dict(batch_size=16, num_workers=2, persistent_workers=True,
                            dataset=dict(indices=64))
    train_cfg = dict(max_epochs={EPOCHS})
    default_hooks = dict(
        logger=dict(interval=1),
        checkpoint=dict(by_epoch=False, interval={CKPT_INTERVAL}, max_keep_ckpts=2))
    randomness = dict(seed=3, deterministic=True)
    custom_hooks = [
        dict(type='LossRecorderHook'),
        dict(type='RepresentationMonitorHook', data_root='data/sample_cifar', per_class=5, k=10,
             by_epoch=False, interval=2)]
    """
TOTAL = ITERS_PER_EPOCH * EPOCHS


def train_cmd(config, work_dir, *extra):
    return [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir',
            str(work_dir), *extra]


def run(cmd):
    proc = subprocess.run(cmd, cwd=REPO, env=train_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


def start_and_kill(cmd, work_dir, kill_after: str, timeout=300):
    """Start a run, SIGKILL it as soon as ``last_checkpoint`` names ``kill_after``."""
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'killed_run.log'), 'w') as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=train_env(), stdout=log, stderr=log)
        pointer = osp.join(work_dir, 'last_checkpoint')
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None:
            if osp.exists(pointer) and open(pointer).read().endswith(kill_after):
                break
            time.sleep(0.05)
        else:
            proc.kill()
            pytest.fail(f'the run never wrote {kill_after} (exit {proc.poll()}); see '
                        f'{log.name}')
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode


def final_state(work_dir):
    ckpt = torch.load(osp.join(work_dir, f'iter_{TOTAL}.pth'), map_location='cpu',
                      weights_only=True)
    return ckpt['state_dict']


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    config = write_config(tmp_path / 'resume_cfg.py', CONFIG_BODY)
    straight, killed = tmp_path / 'straight', tmp_path / 'killed'
    straight_run = start(train_cmd(config, straight), train_env())  # alongside the killed run
    try:
        returncode = start_and_kill(train_cmd(config, killed), killed,
                                    f'iter_{2 * CKPT_INTERVAL}.pth')
    finally:
        wait_all([straight_run])
    assert returncode == -signal.SIGKILL
    resumed_from = int(open(killed / 'last_checkpoint').read().strip()[:-4].split('_')[-1])
    assert resumed_from % ITERS_PER_EPOCH != 0, 'the test means to resume mid-epoch'
    run(train_cmd(config, killed, '--resume'))

    expected, got = read_losses(straight), read_losses(killed)
    assert sorted(expected) == list(range(1, TOTAL + 1))
    assert sorted(got) == list(range(1, TOTAL + 1)), 'an iteration was skipped or repeated'
    for it in range(1, TOTAL + 1):
        assert got[it] == expected[it], f'iteration {it} (resumed from {resumed_from})'
    for key, value in final_state(straight).items():
        assert torch.equal(final_state(killed)[key], value), key
    # The resumed run's monitor checks are those of the uninterrupted run.
    expected = monitor_values(straight)
    assert sorted(expected) == [0] + list(range(2, TOTAL + 1, 2))
    resumed = monitor_values(killed)  # the latest run in the work dir: the resumed one
    assert {s: v for s, v in expected.items() if s > resumed_from} == resumed
