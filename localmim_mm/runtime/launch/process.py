"""Workers that do not outlive their launcher.

``torch.distributed.run`` starts each worker in its own session, so ``kill -9`` of the launcher
(or of ``tools/dist_train.sh``'s process group) leaves the workers training and writing
checkpoints. A worker started by a launcher therefore asks the kernel to kill it when its parent
dies (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``), with a thread watching the parent PID as the
fallback elsewhere. Killing is safe for the work dir: checkpoints are written atomically.

The dataloader workers a training process forks are tied to it the same way
(:func:`forked_children_die_with_this_process`): without it a worker outlives a killed trainer
until torch's watchdog notices (it checks every 5 s, and only between samples), still loading.
"""
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

__all__ = ['die_with_parent', 'forked_children_die_with_this_process']

PR_SET_PDEATHSIG = 1
WATCH_INTERVAL_S = 1.0


def _set_parent_death_signal() -> bool:
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCH_INTERVAL_S)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(parent: int) -> None:
    """Have this process killed as soon as ``parent`` (its launcher, this process's parent
    when it started) is gone, whatever ended it."""
    if not _set_parent_death_signal():
        threading.Thread(target=_watch_parent, args=(parent,), name='parent-watch',
                         daemon=True).start()
    if os.getppid() != parent:  # the launcher died before the signal was armed
        os.kill(os.getpid(), signal.SIGKILL)


_registered = False
_forking_pid = None  # set in the parent right before os.fork; the child reads its copy


def _record_forking_pid() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _die_with_forking_parent() -> None:
    die_with_parent(_forking_pid)


def forked_children_die_with_this_process() -> None:
    """Every process this process forks from now on (``os.fork``: dataloader workers with the
    ``fork`` start method, which the recipes use) is killed when this process ends, and so on
    down the tree: a killed trainer leaves no dataloader worker behind."""
    global _registered
    if not _registered:
        os.register_at_fork(before=_record_forking_pid, after_in_child=_die_with_forking_parent)
        _registered = True
