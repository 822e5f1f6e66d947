"""Loading mmengine runner checkpoints under torch >= 2.6 (``weights_only=True`` by default).

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``. A runner checkpoint pickles the
message hub's ``HistoryBuffer`` objects, numpy arrays / scalars, and (through the buffer's
statistics table) bound methods rebuilt with ``getattr``, which the weights-only unpickler refuses.
Allowing ``getattr`` would allow arbitrary calls, so instead:

* ``HistoryBuffer`` is pickled as plain data (its logs and counts) via ``copyreg``: checkpoints
  written by a process that imported ``localmim_mm`` contain no ``getattr``;
* the few data types such a checkpoint holds are registered as safe globals.

Checkpoints written without the plugin (e.g. by stock mmpretrain) still need
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` if, and only if, you trust the file. Published / transfer
checkpoints are pure tensors and need none of this.

mmengine's loader of local files (``load_from``, ``--resume``, ``init_cfg=dict(type=
'Pretrained')``) is replaced by one that first checks the file is whole
(:func:`~localmim_mm.utils.checkpoint_file.check_checkpoint_file`), so a truncated file fails
as "truncated/corrupt file" instead of with miniz's message.
"""
import copyreg
import os.path as osp

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .checkpoint_file import check_checkpoint_file


def _reduce_history_buffer(buffer: HistoryBuffer):
    logs, counts = buffer.data
    return HistoryBuffer, (logs.tolist(), counts.tolist(), buffer.max_length)


def _numpy_types():
    core = np._core if hasattr(np, '_core') else np.core
    types = [np.dtype, np.ndarray, core.multiarray.scalar, core.multiarray._reconstruct]
    types += [type(np.dtype(name)) for name in ('float64', 'float32', 'int64', 'int32', 'bool')]
    return types


def load_from_local_checked(filename: str, map_location=None):
    """mmengine's ``load_from_local`` with the whole-file check before ``torch.load``."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    check_checkpoint_file(filename)
    return torch.load(filename, map_location=map_location)


def allow_runner_checkpoints() -> None:
    """Make runner checkpoints written from now on load under ``weights_only=True``, and check
    local files before mmengine unpickles them."""
    copyreg.pickle(HistoryBuffer, _reduce_history_buffer)
    torch.serialization.add_safe_globals([HistoryBuffer, *_numpy_types()])
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_checked, force=True)
