"""The header every benchmark output carries: command, git revision, machine and its load.

    prov = Provenance.start('throughput', argv, threads=torch.get_num_threads())
    ...                                   # the measurement
    header = prov.finish()                # dict: goes into the JSON as ``provenance``
    markdown = prov.markdown() + body     # the same facts as the first lines of the markdown

A timing taken while other work competes for the cores is not a measurement of the code. The
load check compares the 1-minute load average with the cores: before the run, other work must
leave the ``threads`` cores the script will use free (load <= cores - threads); when it ends, the
load (which now includes the script itself) must not exceed the cores. Each check tolerates
``LOAD_TOLERANCE`` (idle machines show a few tenths). A failed check prints a banner on stderr
and is listed under ``load_warnings`` in the header, so a committed output shows it.
"""
import os
import platform
import shlex
import subprocess
import sys
import time
from typing import List, Optional, Sequence

from . import REPO

LOAD_TOLERANCE = 0.5


def git_revision() -> dict:
    """HEAD of the repository and whether tracked files differ from it."""
    def git(*args):
        return subprocess.run(['git', *args], cwd=REPO, capture_output=True, text=True,
                              timeout=30).stdout
    try:
        commit = git('rev-parse', 'HEAD').strip()
        # porcelain lines are 'XY path': two status letters, a space, the path
        dirty = [line[3:] for line in git('status', '--porcelain', '--untracked-files=no')
                 .splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return dict(commit='unknown', dirty_files=[])
    return dict(commit=commit or 'unknown', dirty_files=dirty)


def cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads: int, device: str) -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    info = dict(hostname=platform.node(), cpu_model=cpu_model(), cores=os.cpu_count(),
                usable_cores=usable, torch_threads=threads, device=device,
                python=platform.python_version())
    try:
        import torch
        info['torch'] = torch.__version__
        if device.startswith('cuda') and torch.cuda.is_available():
            info['gpu'] = torch.cuda.get_device_name()
    except ImportError:
        pass
    return info


def load_average() -> List[float]:
    return [round(v, 2) for v in os.getloadavg()]


class Provenance:
    """Collects the header of one benchmark run (see the module docstring). ``script``: the
    script's module name in ``tools.benchmarks`` (the command is ``python -m
    tools.benchmarks.<script> ARGS``)."""

    def __init__(self, script: str, argv: Optional[Sequence[str]], threads: int,
                 device: str = 'cpu', quick: bool = False):
        args = list(sys.argv[1:] if argv is None else argv)
        self.header = dict(
            command=' '.join(shlex.quote(a) for a in
                             ['python', '-m', f'tools.benchmarks.{script}', *args]),
            git=git_revision(), machine=machine(threads, device), quick=quick,
            started=time.strftime('%Y-%m-%d %H:%M:%S %z'), load_before=load_average(),
            load_warnings=[])
        self.threads = threads
        self._start = time.time()
        self._check('before', self.header['load_before'][0],
                    self.header['machine']['usable_cores'] - threads)

    @classmethod
    def start(cls, script: str, argv: Optional[Sequence[str]], threads: int,
              device: str = 'cpu', quick: bool = False) -> 'Provenance':
        return cls(script, argv, threads, device, quick)

    def _check(self, when: str, load: float, limit: float) -> None:
        if load <= limit + LOAD_TOLERANCE:
            return
        cores = self.header['machine']['usable_cores']
        message = (f'load average {load:.2f} {when} the run on {cores} cores, with '
                   f'{self.threads} used by this script: more than the {max(limit, 0):g} the '
                   'measurement can tolerate; its timings are not trustworthy (re-run on a '
                   'quiet machine before publishing them)')
        self.header['load_warnings'].append(message)
        bar = '!' * 78
        print(f'\n{bar}\nWARNING: {message}\n{bar}\n', file=sys.stderr, flush=True)

    def finish(self) -> dict:
        self.header['load_after'] = load_average()
        self.header['finished'] = time.strftime('%Y-%m-%d %H:%M:%S %z')
        self.header['duration_s'] = round(time.time() - self._start, 1)
        self._check('after', self.header['load_after'][0],
                    self.header['machine']['usable_cores'])
        return self.header

    def markdown(self) -> str:
        """The header as markdown lines (call after :meth:`finish`)."""
        h, m = self.header, self.header['machine']
        commit = h['git']['commit'][:12]
        if h['git']['dirty_files']:
            commit += f" + uncommitted changes in {', '.join(h['git']['dirty_files'])}"
        gpu = f", GPU {m['gpu']}" if m.get('gpu') else ''
        lines = [f"Command: `{h['command']}`", '',
                 f"Git revision: {commit}. Machine: {m['cpu_model']}, {m['usable_cores']} "
                 f"cores, {m['torch_threads']} torch threads, device {m['device']}{gpu}, "
                 f"torch {m.get('torch', '?')}. Run {h['started']} to {h.get('finished', '?')} "
                 f"({h.get('duration_s', '?')} s). Load average (1/5/15 min) before "
                 f"{h['load_before']}, after {h.get('load_after', '?')}."]
        if h['quick']:
            lines += ['', '**Smoke run (`--quick`): not a measurement.**']
        for warning in h['load_warnings']:
            lines += ['', f'**WARNING: {warning}.**']
        return '\n'.join(lines) + '\n'

