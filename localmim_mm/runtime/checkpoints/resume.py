"""``--resume`` without a path: the newest checkpoint of the work dir that is whole.

mmengine resumes from the file named in ``<work_dir>/last_checkpoint`` and fails when that file
is truncated (a copy or a disk that filled up), although an older checkpoint would do. Here the
candidates are that file, then every ``epoch_N.pth`` / ``iter_N.pth`` beside it and in the work
dir, newest first; each is checked whole (zip directory and every member's CRC-32, see
:func:`check_checkpoint_file`) and the first that passes is resumed from. Skipped files are
named with the reason.
"""
import logging
import os
import os.path as osp
import re
from typing import List, Optional, Tuple

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import find_latest_checkpoint

from ...transfer.checkpoint_file import CorruptCheckpointError, check_checkpoint_file

__all__ = ['find_resumable_checkpoint', 'resolve_auto_resume']

CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def _checkpoints_in(folder: str) -> List[str]:
    if not osp.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        match = CHECKPOINT_NAME.match(name)
        path = osp.join(folder, name)
        if match and osp.isfile(path):
            found.append((osp.getmtime(path), int(match.group(2)), path))
    return [path for _, _, path in sorted(found, reverse=True)]


def resume_candidates(work_dir: str) -> List[str]:
    """The ``last_checkpoint`` target, then the other checkpoints newest first (no repeats)."""
    pointed = find_latest_checkpoint(work_dir) or None
    folders = [work_dir] + ([osp.dirname(pointed)] if pointed else [])
    ordered = [pointed] if pointed else []
    for folder in folders:
        ordered += _checkpoints_in(folder)
    seen, unique = set(), []
    for path in ordered:
        key = osp.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def find_resumable_checkpoint(work_dir: str) -> Tuple[Optional[str], List[Tuple[str, str]]]:
    """``(newest whole checkpoint or None, [(skipped path, why), ...])``."""
    skipped = []
    for path in resume_candidates(work_dir):
        try:
            check_checkpoint_file(path, verify_crc=True)
        except (CorruptCheckpointError, FileNotFoundError) as err:
            skipped.append((path, str(err)))
            continue
        return path, skipped
    return None, skipped


def resolve_auto_resume(cfg: Config, announce: bool = True) -> Optional[str]:
    """Set ``cfg.load_from`` to the checkpoint ``--resume`` continues from (None: none yet, the
    run starts from scratch as mmengine would). Every rank picks the same file from the same
    directory; only ``announce=True`` prints which and what was skipped."""
    path, skipped = find_resumable_checkpoint(cfg.work_dir)
    if announce:
        for bad, why in skipped:
            print_log(f'--resume: skipped {bad}: {why}', logger='current', level=logging.WARNING)
    if path is None and skipped:
        raise SystemExit(f'--resume: none of the {len(skipped)} checkpoints in {cfg.work_dir} '
                         'is whole (see above); remove them to start from scratch, or resume '
                         'from a good copy with --resume PATH')
    if path is not None and announce:
        note = ' (the newest checkpoint that is whole)' if skipped else ''
        print_log(f'--resume: resuming from {path}{note}', logger='current')
    cfg.resume, cfg.load_from = True, path
    return path
