"""The reliability hooks do collective work only on iterations that a checkpoint follows.

``RNGStateHook`` all-gathers the ranks' random states and ``NonFiniteLossHook`` all-reduces a
finite flag only where the runner's checkpoint hook saves (``checkpoint_due`` in
``localmim_mm/runtime/hooks/atomic_checkpoint_hook.py``); the NaN guarantee still holds
(docs/guarantees.md).
The in-process runs stand in for rank 0 of two processes (``get_dist_info`` says 2; the
collectives are recorded); one real 2-process gloo run checks the collectives actually made.
"""
import json
import math
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import CheckpointHook, Hook, LoggerHook, RuntimeInfoHook
from mmengine.runner import Runner

import localmim_mm  # noqa: F401
from localmim_mm.runtime.hooks import NonFiniteLossHook, RNGStateHook
from localmim_mm.runtime.hooks import non_finite_loss_hook, rng_state_hook
from .reliability_helpers import REPO, TINY_VIT_CONFIG, train_env, write_config


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_runner(work_dir, checkpoint, epochs=3) -> Runner:
    """The tiny LocalMIM ViT on 24 images, batch 8: 3 iterations an epoch."""
    cfg = Config.fromfile(TINY_VIT_CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.update(batch_size=8, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=osp.join(REPO, 'data', 'sample_cifar'),
                                        indices=24)
    cfg.train_cfg.max_epochs = epochs
    cfg.default_hooks.logger.interval = 1
    if checkpoint is None:
        cfg.default_hooks.checkpoint = None
    else:
        cfg.default_hooks.checkpoint.update(checkpoint)
    return Runner.from_cfg(cfg)


class TwoRanks:
    """Rank 0 of 2 for the two hooks: records each collective at ``runner.iter`` and each
    checkpoint at the step its meta names (mmengine: ``iter`` for by-epoch saves, ``iter + 1``
    for by-iteration saves)."""

    def __init__(self, monkeypatch, runner, other_rank_nan_at=None):
        self.runner, self.other_rank_nan_at = runner, other_rank_nan_at
        self.gathers, self.reduces, self.rank_counts = [], [], []
        self.saved_steps, self.saves_at = [], []
        for module in (rng_state_hook, non_finite_loss_hook):
            monkeypatch.setattr(module, 'get_dist_info', lambda: (0, 2))
        monkeypatch.setattr(rng_state_hook, 'all_gather_object', self.all_gather_object)
        monkeypatch.setattr(non_finite_loss_hook, 'all_reduce', self.all_reduce)
        save = runner.save_checkpoint

        def save_checkpoint(*args, by_epoch=True, **kwargs):
            self.saved_steps.append(runner.iter + (0 if by_epoch else 1))
            self.saves_at.append(runner.iter)
            return save(*args, by_epoch=by_epoch, **kwargs)
        runner.save_checkpoint = save_checkpoint
        runner.register_hook(_RankCountsHook(self), priority='LOWEST')

    def all_gather_object(self, obj):
        self.gathers.append(self.runner.iter)
        return [obj, obj]

    def all_reduce(self, flag, op):
        step = self.runner.iter + 1
        self.reduces.append(step)
        if step == self.other_rank_nan_at:
            flag[0] = 0.


class _RankCountsHook(Hook):
    def __init__(self, record):
        self.record = record

    def before_save_checkpoint(self, runner, checkpoint):  # runs after RNGStateHook's
        self.record.rank_counts.append(len(checkpoint['rng_states']['ranks']))


@pytest.mark.parametrize('checkpoint, saved_steps', [
    (dict(by_epoch=False, interval=2), [2, 4, 6, 8, 9]),  # 9: save_last
    (dict(by_epoch=True, interval=2), [6, 9]),  # ends of epochs 2 and 3 (save_last)
    (dict(by_epoch=False, interval=4, save_begin=3, save_last=False), [3, 7]),
    (None, []),  # no checkpoint hook: never any collective
], ids=['by-iter', 'by-epoch', 'save-begin', 'no-checkpoint-hook'])
def test_collectives_only_where_a_checkpoint_is_saved(tmp_path, monkeypatch, checkpoint,
                                                      saved_steps):
    runner = tiny_runner(tmp_path, checkpoint)
    two = TwoRanks(monkeypatch, runner)
    runner.train()
    assert two.saved_steps == saved_steps  # hand-computed from the checkpoint hook's settings
    assert two.gathers == two.saves_at  # gathered at the same stage, right before each save
    assert two.reduces == saved_steps  # losses of the saved step, agreed before it is written
    assert two.rank_counts == [2] * len(saved_steps)  # every checkpoint holds both ranks


def test_nan_on_another_rank_at_a_save_iteration_stops_before_the_save(tmp_path, monkeypatch):
    runner = tiny_runner(tmp_path, dict(by_epoch=False, interval=2), epochs=2)
    two = TwoRanks(monkeypatch, runner, other_rank_nan_at=4)
    with pytest.raises(FloatingPointError, match=r'iteration 4 .*non-finite on another rank'):
        runner.train()
    assert two.saved_steps == [2]
    assert open(tmp_path / 'last_checkpoint').read() == str(tmp_path / 'iter_2.pth')


def test_hook_order_the_finite_check_reads_the_logged_host_values(tmp_path):
    runner = tiny_runner(tmp_path, dict(by_epoch=False, interval=2))
    kinds = [type(h) for h in runner.hooks]
    position = {kind: kinds.index(kind) for kind in
                (RuntimeInfoHook, NonFiniteLossHook, LoggerHook, RNGStateHook)}
    checkpoint = next(i for i, h in enumerate(runner.hooks) if isinstance(h, CheckpointHook))
    assert position[RuntimeInfoHook] < position[NonFiniteLossHook] < position[LoggerHook]
    assert position[NonFiniteLossHook] < checkpoint and position[RNGStateHook] < checkpoint
    hook = runner.hooks[position[NonFiniteLossHook]]
    hook.before_train(runner)
    # RuntimeInfoHook has moved the losses to the host; the check must not touch the tensors.
    runner.hooks[position[RuntimeInfoHook]].after_train_iter(
        runner, 0, outputs=dict(loss=torch.tensor(math.nan), loss_block3=torch.tensor(math.nan)))

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f'the finite check used the loss tensor ({name})')

    with pytest.raises(FloatingPointError, match=r'iteration 1 .*loss_block3=nan'):
        hook.after_train_iter(runner, 0, outputs=dict(loss=Untouchable(),
                                                      loss_block3=Untouchable()))


# --- a real 2-process run (gloo) ------------------------------------------------------------------

SAVE_INTERVAL, NAN_RANK, NAN_ITER = 2, 1, 5  # saves after iterations 2, 4 (6); NaN just before 6
DIST_BODY = f"""
    custom_imports = dict(imports=['localmim_mm', 'tests.collective_recorder'],
                          allow_failed_imports=False)
    custom_hooks = [dict(type='CollectiveRecorderHook'),
                    dict(type='NaNLossOnRankHook', rank={NAN_RANK}, iteration={NAN_ITER})]
    train_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                            dataset=dict(indices=64))
    train_cfg = dict(max_epochs=2)
    default_hooks = dict(logger=dict(interval=1),
                         checkpoint=dict(by_epoch=False, interval={SAVE_INTERVAL},
                                         max_keep_ckpts=3))
    randomness = dict(seed=5, diff_rank_seed=True)
    """


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def read_collectives(work_dir, rank):
    with open(osp.join(work_dir, f'collectives_rank{rank}.jsonl')) as f:
        return [json.loads(line) for line in f]


def test_two_processes_collect_only_at_saves_and_a_nan_never_reaches_a_checkpoint(tmp_path):
    config = write_config(tmp_path / 'dist.py', DIST_BODY)
    work_dir = tmp_path / 'dist'
    env = dict(train_env(), PORT=str(free_port()), PYTHON=sys.executable)
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, '2',
                           '--work-dir', str(work_dir)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert f'Non-finite loss at iteration {NAN_ITER} (epoch 2) on rank {NAN_RANK}' in output, \
        output[-3000:]

    # The NaN step's weights (averaged into rank 0's by DDP) never reached a checkpoint.
    assert open(work_dir / 'last_checkpoint').read() == str(work_dir / 'iter_4.pth')
    assert not osp.exists(work_dir / 'iter_6.pth')
    ckpt = torch.load(work_dir / 'iter_4.pth', map_location='cpu', weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values())
    assert len(ckpt['rng_states']['ranks']) == 2

    for rank in (0, 1):
        training = [c for c in read_collectives(work_dir, rank) if c['stage'] != 'before_train']
        by_hooks = sorted((c['iter'], c['hook'], c['name']) for c in training if c['hook'])
        assert by_hooks == [(step, hook, name) for step in (2, 4) for hook, name in (
            ('NonFiniteLossHook', 'all_reduce'), ('RNGStateHook', 'all_gather_object'))], rank
        assert all(c['hook'] for c in training), training  # nothing else collects per step
