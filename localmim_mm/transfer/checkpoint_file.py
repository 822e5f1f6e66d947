"""Is a checkpoint file whole? Checked on the bytes, before anything is unpickled. And the one way
to write a file so that a kill mid-write never leaves a partial file under its name.

``torch.save`` writes a zip archive (``<name>/data.pkl`` plus one member per storage) whose
directory sits at the very end of the file, so a file cut short by a full disk, a killed copy or
an interrupted download has no readable directory; torch then fails with a miniz message, or, for
a damaged member, loads wrong values without a word (it does not check the members' CRC-32).
:func:`check_checkpoint_file` tells these cases apart from a file that is whole but holds
objects the weights-only unpickler refuses, so that no caller suggests ``--trust-pickle`` (or
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) for a file that no unpickler can read.
"""
import contextlib
import os
import os.path as osp
import tempfile
import zipfile
from typing import Iterator

__all__ = ['CorruptCheckpointError', 'check_checkpoint_file', 'atomic_output', 'atomic_write_text',
           'commit_file', 'fsync_file']

_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = b'\x80'  # torch's legacy (pre-1.6) format starts with a pickle header


class CorruptCheckpointError(ValueError):
    """A checkpoint file that is empty, truncated, damaged, or not a torch file at all."""


def _corrupt(path: str, reason: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f'checkpoint {path!r} is a truncated/corrupt file: {reason}. No loader can read it (it '
        'was probably cut short by a killed write or copy, or a full disk): copy it again, or '
        'use an earlier checkpoint')


def check_checkpoint_file(path: str, verify_crc: bool = False) -> None:
    """Raise :class:`CorruptCheckpointError` unless ``path`` looks like a whole torch file.

    Checks, without unpickling: the file is not empty; it is a zip archive whose directory
    (at the end of the file) reads and which holds a ``data.pkl``, or a legacy torch pickle
    (not checked further); with ``verify_crc`` every member's CRC-32 (reads the whole file).
    ``FileNotFoundError`` when there is no such file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    size = os.path.getsize(path)
    if size == 0:
        raise _corrupt(path, 'the file is empty (0 bytes)')
    with open(path, 'rb') as f:
        head = f.read(4)
    if head.startswith(_PICKLE_PROTO):
        return
    if not head.startswith(_ZIP_MAGIC):
        raise _corrupt(path, f'it is not a torch checkpoint (its first bytes are {head!r}; a torch '
                       'file starts with a zip or pickle header)')
    _check_zip(path, size, verify_crc)


def _check_zip(path: str, size: int, verify_crc: bool) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            damaged = archive.testzip() if verify_crc else None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as err:
        raise _corrupt(path, f'its zip directory does not read ({err}; {size} bytes), i.e. the '
                       'file ends early') from err
    if not any(name == 'data.pkl' or name.endswith('/data.pkl') for name in names):
        raise _corrupt(path, f'the zip archive has no data.pkl (members {names[:4]})')
    if damaged is not None:
        raise _corrupt(path, f'member {damaged!r} fails its CRC-32 check')


@contextlib.contextmanager
def atomic_output(path: str, suffix: str = '.tmp') -> Iterator[str]:
    """Yield a fresh temporary path in ``path``'s folder (ending in ``suffix``, for writers that
    add or need an extension); when the body returns, the file is flushed to disk, given the
    mode ``open()`` would give it, and renamed over ``path`` (atomic on POSIX). When the body
    raises, the temporary file is removed and ``path`` is untouched."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'{osp.basename(path)}.', suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _new_file_mode())
        commit_file(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str, text: str) -> None:
    with atomic_output(path) as tmp, open(tmp, 'w') as f:
        f.write(text)


def commit_file(tmp: str, path: str) -> None:
    """Flush the finished file ``tmp`` to disk and rename it over ``path``."""
    fsync_file(tmp)
    os.replace(tmp, path)


def fsync_file(path: str) -> None:
    with open(path, 'rb+') as f:
        os.fsync(f.fileno())


def _new_file_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the umask (0o644 under umask 022);
    ``mkstemp`` creates 0o600, which other users and the downstream jobs could not read."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
