"""How ``tools/train.py`` / ``tools/test.py`` end on an error: one clear message, no traceback.

A bad setting raises with a message that names the value and the fix; printed after 30-50 lines
of traceback it is easy to miss. :func:`run_tool` prints ``error: <message>`` on stderr and exits
with status 1; the traceback goes to the run's log file when one is open, and ``--debug`` shows
it on the terminal instead (the exception propagates unchanged).
"""
import difflib
import glob
import logging
import os.path as osp
import sys
import traceback
from typing import Callable, Optional

from mmengine.logging import MMLogger

__all__ = ['run_tool', 'check_config_path']

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # runtime/cli/


def run_tool(main: Callable[[], None]) -> None:
    """Run a tool's ``main``; on an exception print one message (``--debug``: the traceback)."""
    if '--debug' in sys.argv[1:]:
        main()
        return
    try:
        main()
    except Exception as err:  # SystemExit / KeyboardInterrupt keep their own behaviour
        log_file = _log_traceback()
        where = f'traceback in {log_file}' if log_file else 'rerun with --debug for the traceback'
        print(f'error: {_message(err)} ({where})', file=sys.stderr)
        sys.exit(1)


def _message(err: BaseException) -> str:
    text = str(err) if not isinstance(err, KeyError) or len(err.args) != 1 else str(err.args[0])
    if '\nOriginal Traceback' in text:  # re-raised from a DataLoader worker: its last line
        last = text.strip().splitlines()[-1]
        text = last.split(': ', 1)[-1]
    return f'{type(err).__name__}: {text}' if text else type(err).__name__


def _log_traceback() -> Optional[str]:
    """Write the current exception's traceback to the log files of the current MMLogger."""
    logger = MMLogger.get_current_instance()
    files = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
    for handler in files:
        handler.stream.write(traceback.format_exc())
        handler.flush()
    return files[0].baseFilename if files else None


def check_config_path(path: str) -> None:
    """``SystemExit`` naming a config file that does not exist, with the closest ones."""
    if osp.isfile(path) or '::' in path:  # 'mmpretrain::...': mmengine resolves and checks it
        return
    known = glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    names = sorted(osp.relpath(p, REPO) for p in known if '_base_' not in p)
    close = difflib.get_close_matches(osp.normpath(path), names, n=2, cutoff=0.6)
    by_file = {osp.basename(n): n for n in names}
    close = close or [by_file[b] for b in difflib.get_close_matches(
        osp.basename(path), sorted(by_file), n=2, cutoff=0.6)]
    hint = f'; did you mean {" or ".join(close)}?' if close else \
        '; the recipes are under configs/ (configs/localmim/, configs/lomar/, configs/benchmarks/)'
    raise SystemExit(f'config file {path!r} does not exist{hint}')
