"""Is a checkpoint file whole? Checked on the bytes, before anything is unpickled.

``torch.save`` writes a zip archive (``<name>/data.pkl`` plus one member per storage) whose
directory sits at the very end of the file, so a file cut short by a full disk, a killed copy or
an interrupted download has no readable directory; torch then fails with a miniz message, or, for
a damaged member, loads wrong values without a word (it does not check the members' CRC-32).
:func:`check_checkpoint_file` tells these cases apart from a file that is whole but holds
objects the weights-only unpickler refuses, so that no caller suggests ``--trust-pickle`` (or
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) for a file that no unpickler can read.
"""
import os
import zipfile

__all__ = ['CorruptCheckpointError', 'check_checkpoint_file']

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
