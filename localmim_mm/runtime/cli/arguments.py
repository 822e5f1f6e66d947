"""The options ``tools/train.py`` and ``tools/test.py`` share (as mmpretrain's tools take them)."""
import argparse
import os
from typing import List, Optional

from mmengine.config import DictAction

__all__ = ['add_shared_arguments', 'parse_tool_args']


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options``, ``--launcher``, ``--local-rank`` and ``--debug``."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value pairs (xxx=yyy format)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of an error (default: one line)')


def parse_tool_args(parser: argparse.ArgumentParser,
                    argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse, and publish ``--local-rank`` as ``LOCAL_RANK`` for launchers that pass the flag."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args
