"""Shared by the reliability tests: a per-iteration loss recorder and small training configs.

``LossRecorderHook`` is imported by the training subprocesses through ``custom_imports``; it
writes every iteration's loss terms at full precision (the log rounds them and smooths over a
window), one JSON line per iteration and rank.
"""
import json
import os
import os.path as osp
import subprocess
import tempfile
import textwrap

import localmim_mm  # noqa: F401  (runner checkpoints load under weights_only)
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_VIT_CONFIG = osp.join(REPO, 'configs', 'localmim',
                           'localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py')
SINGLE_THREAD = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


@HOOKS.register_module(force=True)
class LossRecorderHook(Hook):
    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        record = dict(iter=runner.iter + 1, losses={k: float(v) for k, v in outputs.items()})
        path = osp.join(runner.work_dir, f'losses_rank{get_rank()}.jsonl')
        with open(path, 'a') as f:
            f.write(json.dumps(record) + '\n')


def read_losses(work_dir, rank=0) -> dict:
    """{iteration: {term: value}}; a later line for the same iteration (a resumed run) wins."""
    losses = {}
    with open(osp.join(work_dir, f'losses_rank{rank}.jsonl')) as f:
        for line in f:
            record = json.loads(line)
            losses[record['iter']] = record['losses']
    return losses


def write_config(path, body: str, base: str = TINY_VIT_CONFIG) -> str:
    """A config inheriting ``base`` that records losses, with ``body`` appended."""
    text = textwrap.dedent(f"""\
        _base_ = [{base!r}]
        custom_imports = dict(imports=['localmim_mm', 'tests.reliability_helpers'],
                              allow_failed_imports=False)
        custom_hooks = [dict(type='LossRecorderHook')]
        """) + textwrap.dedent(body)
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def train_env() -> dict:
    return dict(os.environ, PYTHONPATH=REPO, **SINGLE_THREAD)


def start(cmd, env) -> tuple:
    """Start a training command in the repo; its output goes to a temporary file (a pipe nobody
    reads while another run is awaited would stall it)."""
    log = tempfile.TemporaryFile(mode='w+')
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, cmd, log


def wait_all(jobs, timeout=600) -> list:
    """Wait for started jobs; assert that each exited 0, with the output tail of each that did
    not; return their outputs. Jobs still running at the timeout (or when this raises) are
    killed."""
    try:
        for proc, _, _ in jobs:
            proc.wait(timeout=timeout)
    finally:
        for proc, _, _ in jobs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    outputs, failures = [], []
    for proc, cmd, log in jobs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
        if proc.returncode != 0:
            failures.append(f'{" ".join(map(str, cmd))} exited {proc.returncode}:\n'
                            f'{outputs[-1][-4000:]}')
    assert not failures, '\n\n'.join(failures)
    return outputs


def run_together(*jobs, timeout=600) -> list:
    """Run independent ``(cmd, env)`` training jobs at once and return their outputs: the tests'
    runs are single-threaded (``SINGLE_THREAD``), so a reference run and a 2-process run share
    the cores instead of waiting for each other."""
    return wait_all([start(cmd, env) for cmd, env in jobs], timeout=timeout)
