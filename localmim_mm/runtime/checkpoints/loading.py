"""Checkpoint loading for runs: weights-only runner checkpoints, checked and converted files.

mmengine (``compat.TESTED_MMENGINE``) calls ``torch.load`` without ``weights_only``; under torch >=
2.6 that is the weights-only unpickler, which refuses what a runner checkpoint pickles: the message
hub's ``HistoryBuffer`` (rebuilt through ``getattr`` of a bound method) and numpy values. Allowing
``getattr`` would allow arbitrary calls, so instead ``HistoryBuffer`` is pickled as plain data (its
logs and counts) via ``copyreg`` and the data types are registered as torch safe globals.
Checkpoints written without this layer (e.g. by stock mmpretrain) still need
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` if, and only if, you trust the file.

mmengine's local and http(s) loaders are replaced by
:func:`localmim_mm.transfer.read_checkpoint`, so ``load_from``, ``--resume``, ``init_cfg`` and
``get_model(pretrained=...)`` check the file is whole before unpickling, download a URL once into
the torch hub cache, and convert the authors' release layout.
"""
import copyreg

import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from localmim_mm.transfer.checkpoint_io import RUNNER_CHECKPOINT_TYPES, read_checkpoint

from ..compat import require_tested_mmengine


def _reduce_history_buffer(buffer: HistoryBuffer):
    logs, counts = buffer.data
    return HistoryBuffer, (logs.tolist(), counts.tolist(), buffer.max_length)


def _load_checked(filename: str, map_location=None):
    return read_checkpoint(filename, map_location=map_location or 'cpu')


def enable_checkpoint_loading() -> None:
    # HistoryBuffer(log_history, count_history, max_length): the constructor of the tested mmengine.
    require_tested_mmengine('pickling HistoryBuffer as plain data')
    copyreg.pickle(HistoryBuffer, _reduce_history_buffer)
    torch.serialization.add_safe_globals(RUNNER_CHECKPOINT_TYPES)
    # Replacing existing schemes needs force=True: mmengine registers '' and http(s) itself.
    for prefixes in ('', ('http://', 'https://')):
        CheckpointLoader.register_scheme(prefixes=prefixes, loader=_load_checked, force=True)
