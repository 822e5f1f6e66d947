"""One live training run per work dir.

A second run started in a work dir that a live run writes (e.g. ``--resume`` while the first is
still going) would interleave two trainings' checkpoints and logs. The first run holds an
exclusive POSIX record lock (``fcntl.lockf``) on ``<work_dir>/.train.lock`` for its whole life;
the kernel drops it when the holder's process ends, however it ends (``kill -9`` included), so a
dead run never blocks the next one and there is no stale-lock clean-up. A record lock belongs to
the process, so the dataloader workers it forks do not inherit it (with ``flock`` they would hold
it on for seconds after a killed run). The file keeps the holder's PID, host and command line for
the message. Only one process of a distributed run (global rank 0) takes it; this process must not
open and close the lock file elsewhere (closing any descriptor of it drops a record lock).
"""
import errno
import fcntl
import os
import os.path as osp
import socket
import sys
import time
from typing import Optional

__all__ = ['WorkDirBusyError', 'lock_work_dir', 'live_holder', 'LOCK_NAME']

LOCK_NAME = '.train.lock'
_held = {}  # work dir -> open file object; kept for the process's life


class WorkDirBusyError(RuntimeError):
    """The work dir is being written by another live training run."""


def lock_work_dir(work_dir: str) -> str:
    """Take the work dir's lock for the rest of this process's life; returns the lock path.

    Raises :class:`WorkDirBusyError` naming the holder when a live process has it.
    """
    work_dir = osp.abspath(work_dir)
    if work_dir in _held:
        return _held[work_dir].name
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, LOCK_NAME)
    handle = open(path, 'a+')
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EAGAIN):
            raise
        holder = _holder(handle)
        handle.close()
        raise WorkDirBusyError(
            f'work dir {work_dir} is in use by a live training run ({holder}). Two runs in one '
            'work dir would overwrite each other\'s checkpoints: wait for it to finish, stop it '
            '(kill that PID), or pass another --work-dir') from None
    handle.seek(0)
    handle.truncate()
    handle.write(f'PID {os.getpid()} on {socket.gethostname()}, started '
                 f'{time.strftime("%Y-%m-%d %H:%M:%S")}: {" ".join(sys.argv)}\n')
    handle.flush()
    _held[work_dir] = handle
    return path


def _holder(handle) -> str:
    handle.seek(0)
    return handle.read().strip() or 'a process that wrote no details'


def live_holder(work_dir: str) -> Optional[str]:
    """Who holds ``work_dir`` (PID, host, command line), or None when no live run does.

    For a process that does not hold the lock itself (e.g. a harness that starts runs there):
    it tests the lock by taking and dropping it at once.
    """
    path = osp.join(osp.abspath(work_dir), LOCK_NAME)
    if osp.abspath(work_dir) in _held:
        raise RuntimeError(f'live_holder: this process holds {path} itself')
    if not osp.isfile(path):
        return None
    with open(path, 'a+') as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            return _holder(handle)
        fcntl.lockf(handle, fcntl.LOCK_UN)
    return None
