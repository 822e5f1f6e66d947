"""The chaos campaign of ``chaos_resume``: a kill plan, the processes of a run, one campaign.

A campaign trains one recipe twice with ``tools/dist_train.sh``: once uninterrupted (the
reference) and once under a seeded plan of ``SIGKILL``s, each followed by ``--resume``. The probes
of :mod:`.chaos_hooks` (added to the recipe's ``custom_imports`` by the harness only) tell the
harness which phase each process is in; a kill is sent a random fraction into the planned phase,
and the phase it landed in is read back from the probes of the killed process.
"""
import glob
import json
import os
import os.path as osp
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from typing import Dict, List, NamedTuple, Optional

import torch

from localmim_mm.transfer.checkpoint_io import read_checkpoint as read_runner_checkpoint
from localmim_mm.transfer.checkpoint_file import CorruptCheckpointError, check_checkpoint_file
from localmim_mm.runtime.checkpoints import find_resumable_checkpoint

from .core import REPO

PHASES = ('iteration', 'data', 'checkpoint', 'restore')
POLL_S = 0.02
GONE_TIMEOUT_S = 30.0


# ------------------------------------------------------------------ the plan
class Kill(NamedTuple):
    phase: str        # one of PHASES
    iteration: int    # the kill comes at (or after) this iteration; 0 for 'restore'
    target: str       # 'group': the launcher's process group; 'worker': one training process
    rank: int         # the worker killed (target 'worker'), else 0
    fraction: float   # how far into the phase's window, in [0, 1)


def plan_kills(kills: int, iters: int, save_iters: List[int], data_iters: List[int],
               procs: int, seed: int) -> List[Kill]:
    """``kills`` kills spread evenly over ``PHASES`` in a seeded random order (the first is
    never a 'restore': there is nothing to restore yet), at distinct iterations: a
    'checkpoint' kill at a save iteration, a 'data' kill at one of ``data_iters`` (the first
    batch of an epoch after the first: the training process waits for its loader there), an
    'iteration' kill anywhere. Targets alternate between the launcher's process group and a
    random worker."""
    rng = random.Random(seed)
    phases = list(PHASES) * (kills // len(PHASES)) + rng.sample(PHASES, kills % len(PHASES))
    rng.shuffle(phases)
    if phases and phases[0] == 'restore':
        first = next((i for i, p in enumerate(phases) if p != 'restore'), None)
        if first is None:
            raise ValueError('a plan of restore kills only has no first run to kill')
        phases[0], phases[first] = phases[first], phases[0]
    chosen = {}
    for phase, pool in (('data', data_iters), ('checkpoint', save_iters),
                        ('iteration', range(1, iters + 1))):
        free = [i for i in pool if i not in chosen]
        wanted = phases.count(phase)
        if wanted > len(free):
            raise ValueError(f'{wanted} {phase} kills but the run has only {len(free)} '
                             f'iterations for them')
        chosen.update({i: phase for i in rng.sample(free, wanted)})
    timed = iter(sorted(chosen.items()))  # in iteration order; 'restore' kills keep their slots
    plan = []
    for k, phase in enumerate(phases):
        iteration, phase = (0, 'restore') if phase == 'restore' else next(timed)
        target = 'group' if k % 2 == 0 else 'worker'
        rank = rng.randrange(procs) if target == 'worker' else 0
        plan.append(Kill(phase, iteration, target, rank, round(rng.random(), 3)))
    return plan


def save_iterations(iters: int, interval: int, save_begin: int = 0,
                    save_last: bool = True) -> List[int]:
    """The iterations after which mmengine's by-iteration ``CheckpointHook`` saves
    (``every_n_train_iters``: ``(iter - save_begin) % interval == 0``, plus the last)."""
    saves = [i for i in range(1, iters + 1)
             if interval > 0 and i - save_begin >= 0 and (i - save_begin) % interval == 0]
    if save_last and iters not in saves:
        saves.append(iters)
    return saves


# ------------------------------------------------------------------ processes of a run
def _stat(pid: int) -> Optional[tuple]:
    """(state, start time) of a live process, None once it is gone (or a zombie)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in 'ZX' else (fields[0], fields[19])


def processes_with_token(token: str) -> Dict[int, str]:
    """{pid: start time} of the live processes whose environment holds ``CHAOS_RUN=token``:
    every process of a run inherits it (launcher, workers, dataloader workers), wherever it
    was re-parented."""
    needle = f'CHAOS_RUN={token}'.encode()
    found = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/environ', 'rb') as f:
                if needle not in f.read().split(b'\0'):
                    continue
        except OSError:
            continue
        stat = _stat(int(name))
        if stat is not None:
            found[int(name)] = stat[1]
    return found


def wait_gone(pids: Dict[int, str], token: str, timeout: float = GONE_TIMEOUT_S) -> tuple:
    """Wait until none of ``pids`` (same start time: not a re-used PID) and no process with the
    run's token is alive. Returns (seconds it took, survivors after ``timeout``)."""
    start = time.time()
    while True:
        alive = {pid for pid, started in pids.items() if (_stat(pid) or (0, None))[1] == started}
        alive |= set(processes_with_token(token))
        if not alive or time.time() - start > timeout:
            return round(time.time() - start, 2), sorted(alive)
        time.sleep(0.05)


# ------------------------------------------------------------------ probes of a run
class Probes:
    """Reads the probe lines (``time phase iteration pid``) of one attempt, as they come."""

    def __init__(self, work_dir: str, attempt: int, procs: int):
        self.paths = [osp.join(work_dir, 'chaos', f'attempt{attempt}_rank{r}.log')
                      for r in range(procs)]
        self.offsets = [0] * procs
        self.lines: List[List[tuple]] = [[] for _ in range(procs)]

    def poll(self) -> None:
        for rank, path in enumerate(self.paths):
            try:
                with open(path) as f:
                    f.seek(self.offsets[rank])
                    text = f.read()
            except FileNotFoundError:
                continue
            whole = text[:text.rfind('\n') + 1]  # a line being written waits for the next poll
            self.offsets[rank] += len(whole)
            for line in whole.splitlines():
                t, phase, step, pid = line.split()
                self.lines[rank].append((float(t), phase, int(step), int(pid)))

    def last(self, rank: int) -> Optional[tuple]:
        return self.lines[rank][-1] if self.lines[rank] else None

    def pid(self, rank: int) -> Optional[int]:
        return self.lines[rank][0][3] if self.lines[rank] else None

    def durations(self, rank: int, begin: str, end: str) -> List[float]:
        """Seconds from each ``begin N`` to ``end N``."""
        starts, spans = {}, []
        for t, phase, step, _ in self.lines[rank]:
            if phase == begin:
                starts[step] = t
            elif phase == end and step in starts:
                spans.append(t - starts.pop(step))
        return spans


def landed_phase(last: Optional[tuple]) -> tuple:
    """(phase, iteration) of a process whose last probe line is ``last``."""
    if last is None:
        return 'startup', 0
    _, phase, step, _ = last
    return {'start': ('startup', 0), 'restore': ('restore', 0), 'loaded': ('restore', step),
            'step': ('iteration', step), 'ckpt_write': ('checkpoint', step),
            'ckpt_written': ('checkpoint', step), 'done': ('data', step + 1)}[phase]


# ------------------------------------------------------------------ checkpoints
def read_checkpoint(path: str) -> dict:
    """A runner checkpoint this campaign's runs just wrote (whole-file and CRC check first),
    read as every loader of the project reads it: the weights-only unpickler."""
    check_checkpoint_file(path, verify_crc=True)
    return read_runner_checkpoint(path, convert_release=False)


def checkpoint_iter(path: Optional[str]) -> int:
    if not path:
        return 0
    stem = osp.basename(path).split('.')[0]
    return int(stem.rsplit('_', 1)[1])


def differences(a, b, where: str = '') -> List[str]:
    """Where two nested states (dicts / lists of tensors and plain values) differ, bit for bit."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b))
        return [] if same else [where]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f'{where} keys {sorted(set(a) ^ set(b), key=str)[:5]}']
        return [d for k in a for d in differences(a[k], b[k], f'{where}.{k}')]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f'{where} length {len(a)} != {len(b)}']
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f'{where}[{i}]')]
    return [] if a == b else [where]


FINAL_STATE = ('state_dict', 'optimizer', 'param_schedulers', 'rng_states')


def final_state(path: str) -> dict:
    ckpt = read_checkpoint(path)
    state = {key: ckpt.get(key) for key in FINAL_STATE}
    state['meta'] = {k: ckpt['meta'][k] for k in ('epoch', 'iter')}
    return state


def read_losses(work_dir: str, rank: int) -> List[tuple]:
    """Every (attempt, iteration, losses) recorded by ``rank``; a killed attempt's last line may
    be cut short and is dropped."""
    records = []
    pattern = osp.join(work_dir, 'chaos', f'losses_attempt*_rank{rank}.jsonl')
    for path in glob.glob(pattern):
        attempt = int(osp.basename(path).split('_')[1][len('attempt'):])
        with open(path) as f:
            lines = f.read().split('\n')
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            records.append((attempt, record['iter'], record['losses']))
    return records


# ------------------------------------------------------------------ one campaign
def run_env(token: str, attempt: int, port: int) -> dict:
    return dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHON=sys.executable,
                PYTHONPATH=REPO, PORT=str(port), CHAOS_RUN=token,
                CHAOS_ATTEMPT=str(attempt))


def launch(config: str, work_dir: str, procs: int, attempt: int, token: str, port: int,
           resume: bool) -> subprocess.Popen:
    os.makedirs(work_dir, exist_ok=True)
    cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, str(procs),
           '--work-dir', work_dir] + (['--resume'] if resume else [])
    log = open(osp.join(work_dir, f'attempt{attempt}.out'), 'w')
    proc = subprocess.Popen(cmd, cwd=REPO, env=run_env(token, attempt, port), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc


class Campaign:
    """The killed-and-resumed run of one recipe (``run``), checked against its reference."""

    def __init__(self, config: str, work_dir: str, procs: int, plan: List[Kill], port: int,
                 ckpt_write_s: float, restore_s: float, data_s: float, log=print):
        self.config, self.work_dir, self.procs, self.plan = config, work_dir, procs, plan
        self.port, self.ckpt_write_s, self.restore_s = port, ckpt_write_s, restore_s
        self.data_s = data_s  # the least time the first batch of an epoch takes to load
        self.token = uuid.uuid4().hex
        self.log = log
        self.reported: Dict[str, str] = {}  # 'path@inode' last_checkpoint named -> a hard link
        self.unreadable: List[str] = []
        self.resume_mismatches: List[str] = []
        self.kills: List[dict] = []
        self.step_s: List[float] = []
        self.link_dir = osp.join(work_dir, 'reported')
        os.makedirs(self.link_dir, exist_ok=True)

    # -- one attempt
    def run(self, timeout: float) -> None:
        for attempt, kill in enumerate(self.plan):
            self._attempt(attempt, kill, timeout)
        final = launch(self.config, self.work_dir, self.procs, len(self.plan), self.token,
                       self.port, resume=bool(self.plan))
        deadline = time.time() + timeout
        while final.poll() is None and time.time() < deadline:
            self._watch_pointer(len(self.plan))
            time.sleep(POLL_S)
        if final.poll() is None:
            self._kill_group(final)
            raise RuntimeError(f'the last run did not finish within {timeout:.0f} s; see '
                               f'{self.work_dir}/attempt{len(self.plan)}.out')
        self._watch_pointer(len(self.plan))
        probes = Probes(self.work_dir, len(self.plan), self.procs)
        probes.poll()
        self._check_resumed(len(self.plan), probes)
        self._check_reported()
        if final.returncode != 0:
            raise RuntimeError(f'the last run exited {final.returncode}; see '
                               f'{self.work_dir}/attempt{len(self.plan)}.out')

    def _attempt(self, attempt: int, kill: Kill, timeout: float) -> None:
        proc = launch(self.config, self.work_dir, self.procs, attempt, self.token, self.port,
                      resume=attempt > 0)
        probes = Probes(self.work_dir, attempt, self.procs)
        deadline = time.time() + timeout
        due = None
        while due is None or time.time() < due:
            if proc.poll() is not None:
                raise RuntimeError(f'attempt {attempt} exited {proc.returncode} before its kill '
                                   f'({kill.phase}); see {self.work_dir}/attempt{attempt}.out')
            if time.time() > deadline:
                self._kill_group(proc)
                raise RuntimeError(f'attempt {attempt} never reached its kill ({kill})')
            probes.poll()
            self._watch_pointer(attempt)
            if due is None:
                due = self._due(kill, probes)
            time.sleep(POLL_S)
        self.kills.append(self._kill(attempt, kill, proc, probes))

    def _due(self, kill: Kill, probes: Probes) -> Optional[float]:
        """When to kill (a time), once the planned phase has begun: in the probes of the worker
        to kill, or of rank 0 for a checkpoint write (rank 0 writes them)."""
        source = 0 if kill.phase == 'checkpoint' else kill.rank
        for t, phase, step, _ in probes.lines[source]:
            if kill.phase == 'iteration' and phase == 'step' and step >= kill.iteration:
                return t + kill.fraction * 0.8 * self._typical(self.step_s, 0.3)
            if kill.phase == 'data' and phase == 'done' and step >= kill.iteration - 1:
                return t + kill.fraction * 0.8 * self.data_s
            if kill.phase == 'checkpoint' and phase == 'ckpt_write' and step >= kill.iteration:
                return t + kill.fraction * self.ckpt_write_s
            if kill.phase == 'restore' and phase == 'restore':
                return t + kill.fraction * self.restore_s
        return None

    @staticmethod
    def _typical(spans: List[float], default: float) -> float:
        return statistics.median(spans[-20:]) if spans else default

    def _kill(self, attempt: int, kill: Kill, proc: subprocess.Popen, probes: Probes) -> dict:
        before = processes_with_token(self.token)
        if kill.target == 'group':
            os.killpg(proc.pid, signal.SIGKILL)
            victims = [proc.pid]
        else:
            victims = [probes.pid(kill.rank)]
            os.kill(victims[0], signal.SIGKILL)
        killed_at = time.time()
        proc.wait()
        _, survivors = wait_gone(before, self.token)
        gone_s = round(time.time() - killed_at, 2)  # the launcher's own teardown included
        if survivors:
            for pid in survivors:
                os.kill(pid, signal.SIGKILL)
            raise RuntimeError(f'attempt {attempt}: processes {survivors} of the run survived '
                               f'the kill ({kill.target}) by {GONE_TIMEOUT_S:.0f} s')
        probes.poll()
        self._check_resumed(attempt, probes)
        self._learn_timings(probes)
        self._watch_pointer(attempt)
        # where the run was (rank 0: it writes the checkpoints), and the killed worker itself
        landed, landed_iter = landed_phase(self._last_before(probes, 0, killed_at))
        victim = landed_phase(self._last_before(probes, kill.rank, killed_at))
        record = dict(kill=len(self.kills) + 1, planned_phase=kill.phase,
                      planned_iteration=kill.iteration, target=kill.target,
                      rank=kill.rank if kill.target == 'worker' else None,
                      fraction=kill.fraction, landed_phase=landed, landed_iteration=landed_iter,
                      killed_worker_phase=f'{victim[0]} @ {victim[1]}',
                      processes=len(before), all_gone_s=gone_s, **self._losses_at_kill(attempt))
        self._check_reported()
        self.log(f'  kill {record["kill"]}: {kill.target}'
                 f'{"" if kill.target == "group" else f" rank {kill.rank}"} planned '
                 f'{kill.phase}@{kill.iteration} landed {landed}@{landed_iter}; '
                 f'{len(before)} processes gone in {gone_s} s; completed {record["completed"]}, '
                 f'last reported checkpoint {record["last_reported"]}, resumes from '
                 f'{record["resumes_from"]}: {record["lost"]} iteration(s) lost')
        return record

    def _check_resumed(self, attempt: int, probes: Probes) -> None:
        """The checkpoint a resumed attempt loaded is the one the harness expected after the
        previous kill (the newest whole one); an attempt killed before loading has none."""
        loaded = [step for _, phase, step, _ in probes.lines[0] if phase == 'loaded']
        expected = self.kills[attempt - 1]['resumes_from'] if attempt else 0
        if loaded and loaded[0] != expected:
            self.resume_mismatches.append(f'attempt {attempt} loaded iteration {loaded[0]}, '
                                          f'expected {expected}')

    @staticmethod
    def _last_before(probes: Probes, rank: int, killed_at: float) -> Optional[tuple]:
        lines = [line for line in probes.lines[rank] if line[0] <= killed_at + 0.01]
        return lines[-1] if lines else None

    def _learn_timings(self, probes: Probes) -> None:
        self.step_s += probes.durations(0, 'step', 'done')

    def _losses_at_kill(self, attempt: int) -> dict:
        """Iterations completed by rank 0, the last checkpoint reported whole, the checkpoint
        ``--resume`` continues from (the runtime's own choice), and the iterations lost."""
        done = [it for a, it, _ in read_losses(self.work_dir, 0) if a == attempt]
        completed = max(done) if done else None
        pointer = osp.join(self.work_dir, 'last_checkpoint')
        reported = open(pointer).read().strip() if osp.exists(pointer) else None
        resume_from, skipped = find_resumable_checkpoint(self.work_dir)
        last_reported, resumes_from = checkpoint_iter(reported), checkpoint_iter(resume_from)
        if completed is None:  # killed before its first iteration: it had restored this much
            completed = resumes_from if attempt == 0 else self.kills[-1]['resumes_from']
        return dict(completed=completed, last_reported=last_reported, resumes_from=resumes_from,
                    skipped_on_resume=[osp.basename(p) for p, _ in skipped],
                    lost=completed - resumes_from,
                    since_checkpoint=completed - last_reported)

    def _kill_group(self, proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        for pid in processes_with_token(self.token):
            os.kill(pid, signal.SIGKILL)

    # -- checkpoints reported whole
    def _watch_pointer(self, attempt: int) -> None:
        """Keep (hard-link) every checkpoint that ``last_checkpoint`` names, as named: the
        run may later replace or remove it, the link keeps the reported bytes."""
        pointer = osp.join(self.work_dir, 'last_checkpoint')
        try:
            with open(pointer) as f:
                path = f.read().strip()
            stat = os.stat(path)
        except OSError:
            return
        key = f'{path}@{stat.st_ino}'
        if key in self.reported:
            return
        link = osp.join(self.link_dir, f'a{attempt}_{len(self.reported)}_{osp.basename(path)}')
        try:
            os.link(path, link)
        except OSError as err:  # replaced between stat and link: the next poll sees the new one
            self.log(f'  could not keep {path} ({err})')
            return
        self.reported[key] = link

    def _check_reported(self) -> None:
        for key, link in self.reported.items():
            if not osp.exists(link):
                continue
            try:
                ckpt = read_checkpoint(link)
                if ckpt['meta']['iter'] != checkpoint_iter(key.split('@')[0]):
                    raise ValueError(f'meta iter {ckpt["meta"]["iter"]}')
            except (CorruptCheckpointError, RuntimeError, ValueError, KeyError, EOFError) as err:
                self.unreadable.append(f'{key}: {err}')
            os.remove(link)
