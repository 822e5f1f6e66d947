"""Kill it anywhere, many times: the short chaos campaign, its refusals, and the fixes it led to.

``tools.benchmarks.chaos_resume`` trains the tiny ViT with ``tools/dist_train.sh ... 2`` (gloo,
CPU), SIGKILLs it 3 times at seeded random moments (alternately the launcher's process group and
one worker) and resumes it each time; here the outcome is checked independently of the tool's own
verdict: the final checkpoints of the killed and the uninterrupted runs are compared tensor by
tensor, the recorded losses line by line, and no process of the run may be left.
"""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

from tools.benchmarks import chaos_campaign, chaos_resume

from .reliability_helpers import REPO, train_env

SHORT = ['--recipes', 'vit', '--kills', '3', '--iters', '6', '--iters-per-epoch', '3',
         '--ckpt-interval', '3', '--ckpt-write-s', '0.5', '--restore-s', '0.5',
         '--load-s', '0.05', '--seed', '5', '--timeout', '300']


def chaos(*args, timeout=600):
    return subprocess.run([sys.executable, '-m', 'tools.benchmarks.chaos_resume', *args],
                          cwd=REPO, env=train_env(), capture_output=True, text=True,
                          timeout=timeout)


def _live(marker: str) -> list:
    """Live (not zombie) processes whose command line holds ``marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                cmdline = f.read().decode(errors='replace')
            with open(f'/proc/{pid}/stat') as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != 'Z':
            found.append(int(pid))
    return found


def _losses(work_dir, rank) -> list:
    """(iteration, losses) of every whole line any attempt of ``rank`` recorded."""
    records = []
    folder = osp.join(work_dir, 'chaos')
    for name in sorted(os.listdir(folder)):
        if name.startswith('losses_') and name.endswith(f'_rank{rank}.jsonl'):
            for line in open(osp.join(folder, name)):
                if line.endswith('\n'):
                    record = json.loads(line)
                    records.append((record['iter'], record['losses']))
    return records


def test_three_kills_of_a_two_process_run_lose_nothing(tmp_path):
    work, out = tmp_path / 'work', tmp_path / 'out'
    proc = chaos(*SHORT, '--work-dir', str(work), '--out-dir', str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not _live(str(work)), 'a process of the campaign outlived it'
    with open(out / 'chaos_resume.json') as f:
        result = json.load(f)['recipes'][0]
    kills = result['kills']
    assert len(kills) == 3 and [k['target'] for k in kills] == ['group', 'worker', 'group']
    run = work / 'vit'
    assert sorted(p.name for p in (run / 'chaos').glob('attempt*.out')) == \
        [f'attempt{i}.out' for i in range(4)]  # 3 killed runs, then the one that finished
    for kill in kills:  # --resume goes back no further than the last checkpoint written whole
        assert kill['last_reported'] <= kill['resumes_from'] <= kill['completed']
        assert kill['lost'] == kill['completed'] - kill['resumes_from']

    ref = torch.load(run / 'reference' / 'iter_6.pth', map_location='cpu', weights_only=False)
    got = torch.load(run / 'chaos' / 'iter_6.pth', map_location='cpu', weights_only=False)
    assert ref['meta']['iter'] == got['meta']['iter'] == 6
    assert sorted(ref['state_dict']) == sorted(got['state_dict'])
    for key, value in ref['state_dict'].items():
        assert torch.equal(got['state_dict'][key], value), key
    for index, state in ref['optimizer']['state'].items():
        for name, value in state.items():
            assert torch.equal(got['optimizer']['state'][index][name], value), (index, name)
    for rank in (0, 1):
        expected = dict(_losses(run / 'reference', rank))
        records = _losses(run / 'chaos', rank)
        assert sorted(expected) == list(range(1, 7))
        assert {it for it, _ in records} == set(expected)
        for it, losses in records:  # every attempt's losses, also those of killed runs
            assert losses == expected[it], (rank, it)


def _refusal(tool, *argv) -> str:
    with pytest.raises(SystemExit) as refused:
        tool.prepare(tool.parse_args(list(argv)))
    return str(refused.value)


def test_more_kills_than_iterations_is_refused_in_one_line(tmp_path):
    proc = chaos('--recipes', 'vit', '--kills', '9', '--iters', '8', '--work-dir',
                 str(tmp_path / 'work'))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "--kills 9 for vit: more kills than the run's 8 iterations (each kill lands at its own "
        'iteration); give fewer kills or more --iters']
    assert not (tmp_path / 'work').exists()


def test_a_recipe_without_checkpoints_or_a_live_work_dir_is_refused(tmp_path):
    tool = chaos_resume
    work = tmp_path / 'work'
    no_ckpt = tmp_path / 'no_ckpt.py'
    no_ckpt.write_text(f"_base_ = ['{REPO}/configs/localmim/"
                       "localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py']\n"
                       'default_hooks = dict(checkpoint=None)\n')
    message = _refusal(tool, '--recipes', str(no_ckpt), '--kills', '3', '--iters', '8',
                       '--work-dir', str(work))
    assert message == (f'--recipes {no_ckpt}: the recipe does not checkpoint (default_hooks.'
                       'checkpoint=None), so a killed run could only start over; give a recipe '
                       'with a checkpoint hook')

    busy = work / 'vit' / 'chaos'  # the work dir of an earlier campaign, now used by a live run
    busy.mkdir(parents=True)
    (busy / tool.MARK).touch()
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import fcntl, sys, time\n'
         f'f = open({str(busy / ".train.lock")!r}, "a+")\n'
         'fcntl.lockf(f, fcntl.LOCK_EX)\nf.write("PID 4242 on host: a live run\\n")\n'
         'f.flush()\nprint("locked", flush=True)\ntime.sleep(600)'],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        message = _refusal(tool, '--recipes', 'vit', '--kills', '3', '--iters', '8',
                           '--work-dir', str(work))
    finally:
        holder.kill()
        holder.wait()
    assert message == (f'--work-dir {busy} is in use by a live training run (PID 4242 on host: '
                       'a live run); wait for it, stop it, or pass another --work-dir')
    assert sorted(p.name for p in busy.iterdir()) == [tool.MARK, '.train.lock']  # untouched
    assert not (work / 'vit' / 'reference').exists()
    # once the holder is gone the same campaign passes the checks
    assert [job['name'] for job in tool.prepare(tool.parse_args(
        ['--recipes', 'vit', '--kills', '3', '--iters', '8', '--work-dir', str(work)]))] == ['vit']


def test_the_kill_plan_spreads_kills_over_phases_and_iterations():
    tool = chaos_resume
    campaign = chaos_campaign
    # mmengine's by-iteration rule by hand: every 3rd iteration, and the last one (save_last)
    assert campaign.save_iterations(8, 3) == [3, 6, 8]
    assert campaign.save_iterations(24, 3) == list(range(3, 25, 3))
    saves, epoch_starts = list(range(3, 25, 3)), [5, 9, 13, 17, 21]
    for seed in range(5):
        plan = campaign.plan_kills(20, 24, saves, epoch_starts, 2, seed)
        assert sorted(k.phase for k in plan) == sorted(tool.PHASES * 5)
        assert plan[0].phase != 'restore'  # nothing to restore before the first kill
        timed = [k for k in plan if k.phase != 'restore']
        assert [k.iteration for k in timed] == sorted({k.iteration for k in timed})
        assert all(k.iteration in saves for k in plan if k.phase == 'checkpoint')
        assert all(k.iteration in epoch_starts for k in plan if k.phase == 'data')
        assert [k.target for k in plan] == ['group', 'worker'] * 10
    assert campaign.plan_kills(20, 24, saves, epoch_starts, 2, 0) != \
        campaign.plan_kills(20, 24, saves, epoch_starts, 2, 1)


# ------------------------------------------------------------------ fixes the campaign led to
TRAINER = """
import os, sys, time
import torch
from localmim_mm.runtime.launch.process import forked_children_die_with_this_process
if sys.argv[1] == 'tied':
    forked_children_die_with_this_process()

class Slow(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        print('loading', os.getpid(), flush=True)
        time.sleep(600)  # a long sample: torch's watchdog only looks between samples
        return index

loader = torch.utils.data.DataLoader(Slow(), num_workers=1, multiprocessing_context='fork')
next(iter(loader))
"""


def _start_trainer(mode: str):
    trainer = subprocess.Popen([sys.executable, '-c', TRAINER, mode], cwd=REPO, env=train_env(),
                               stdout=subprocess.PIPE, text=True)
    line = trainer.stdout.readline().split()
    assert line[:1] == ['loading'], line
    return trainer, int(line[1])


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def test_dataloader_workers_die_with_their_killed_trainer():
    """The campaign found dataloader workers outliving a SIGKILLed trainer (until torch's
    watchdog looks, between samples). Workers forked after
    ``forked_children_die_with_this_process`` (tools/train.py calls it) die with it, even mid-
    sample; without it (the control) the worker is still loading after its trainer is gone."""
    control, control_worker = _start_trainer('untied')
    tied, tied_worker = _start_trainer('tied')
    try:
        for trainer in (control, tied):
            trainer.send_signal(signal.SIGKILL)
            trainer.wait()
        assert _alive(control_worker), 'the control worker should outlive its trainer'
        deadline = time.time() + 60
        while _alive(tied_worker) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive(tied_worker), 'the worker outlived its killed trainer'
    finally:
        for pid in (control_worker, tied_worker):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
