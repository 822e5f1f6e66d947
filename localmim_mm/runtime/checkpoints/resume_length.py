"""``--resume`` continues the run length its checkpoint was trained for, or is refused.

A resumed run restores its parameter schedulers from the checkpoint, so changing the length on
resume cannot rescale the schedule: ``--resume`` with the config's longer ``max_epochs`` would
train the extra epochs at the finished schedule's final lr, and ``--resume --epochs 8`` of a
6-epoch run would print a rescale that the saved scheduler state then overrides. Every checkpoint
of ``tools/train.py`` records its run length (``meta['run_length']``, written by
:class:`~localmim_mm.runtime.hooks.RunLengthCheck`; older checkpoints: the ``train_cfg`` of the
config text mmengine saves in ``meta['cfg']``). :func:`check_resume_length`, run before the
Runner is built, compares it with the length asked for and

* refuses ``--epochs`` with another length (the resumed run would ignore the rescale it
  prints), and a length beyond the end of the saved schedule (``--epochs 6`` then ``--resume``
  with the recipe's 20 epochs: 14 epochs at the final lr); each with the two commands that do
  what the user likely meant: continue the run to its own length, or train the new length from
  its weights with a fresh schedule. A run cut short with ``train_cfg.max_epochs`` inside its
  schedule may be continued further (its schedule serves it);
* says that a finished run is finished (exit status 0: a re-queued job is not a failure).
"""
import logging
import os.path as osp
import shlex
from typing import List, Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from ..cli.schedule import run_length_of
from ..hooks.run_length_check import finished_message
from ..launch.training_run import launcher_rank

__all__ = ['check_resume_length', 'saved_run_length']

# train.py options that the suggested commands set themselves: name -> takes a value
_REPLACED = {'--epochs': True, '--work-dir': True, '--launcher': True, '--local-rank': True,
             '--local_rank': True}


def checkpoint_meta(path: str) -> Optional[dict]:
    """``meta`` of a local runner checkpoint, its tensors memory-mapped (not read); None when it
    cannot be read this way (mmengine's resume then reports the problem)."""
    if not path or '://' in path or not osp.isfile(path):
        return None
    try:
        ckpt = torch.load(path, map_location='cpu', mmap=True, weights_only=True)
    except Exception as err:  # e.g. a legacy pickle: mmengine's own load reports what is wrong
        print_log(f'--resume: the run length of {path} cannot be read ({type(err).__name__}), so '
                  'it is not compared with the length asked for; the resumed run keeps the '
                  'schedule saved in the checkpoint', logger='current', level=logging.WARNING)
        return None
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    return meta if isinstance(meta, dict) else None


def saved_run_length(meta: dict) -> Optional[dict]:
    """The run length a checkpoint was trained for (see the module docstring)."""
    if isinstance(meta.get('run_length'), dict):
        return run_length_of(meta['run_length'])
    text = meta.get('cfg')
    if not isinstance(text, str):
        return None
    try:
        return run_length_of(Config.fromstring(text, '.py').get('train_cfg'))
    except Exception:  # a config text that no longer parses: nothing to compare
        return None


def check_resume_length(cfg: Config, config_path: str, argv: List[str],
                        epochs_option: Optional[int] = None) -> None:
    """Before building a resumed run: refuse a length its saved schedule cannot serve, stop a
    finished run (exit status 0). ``epochs_option``: the ``--epochs`` given, if any."""
    if not cfg.get('resume') or not cfg.get('load_from'):
        return
    meta = checkpoint_meta(cfg.load_from)
    saved = saved_run_length(meta) if meta else None
    asked = run_length_of(cfg.get('train_cfg'))
    if saved is None or asked is None or saved.keys() != asked.keys():
        return
    (key, length), = saved.items()
    by_epoch = key == 'max_epochs'
    done = int(meta.get('epoch' if by_epoch else 'iter', 0))
    rank0 = launcher_rank() == 0  # every process stops; one says why
    if asked[key] == length:
        if done >= length:
            unit = 'epoch' if by_epoch else 'iteration'
            if rank0:
                print_log(finished_message(config_path, cfg.work_dir,
                                           f'{unit} {done} of {key}={length}', cfg.load_from,
                                           by_epoch), logger='current')
            raise SystemExit(0)
        return
    why = _conflict(meta.get('run_length') or {}, by_epoch, length, asked[key], epochs_option)
    if why:
        raise SystemExit(_refusal(cfg, argv, by_epoch, length, asked[key], done, why)
                         if rank0 else 1)


def _conflict(saved: dict, by_epoch: bool, length: int, asked: int,
              epochs_option: Optional[int]) -> Optional[str]:
    """Why the resumed run would not train ``asked`` epochs / iterations as asked, or None.

    Resuming restores the saved schedulers. So ``--epochs`` cannot rescale them, and a length
    beyond the end of the saved schedule trains the extra part at its final lr. Within the
    schedule (a run cut short with ``train_cfg.max_epochs`` and continued) nothing is lost.
    """
    if epochs_option is not None:
        return (f'--epochs {epochs_option} would rescale a schedule that the resumed run does not '
                'use (it keeps the one saved in its checkpoint)')
    end, total = saved.get('schedule_end_iter'), saved.get('max_iters')
    if end is None or not total:
        return None  # a schedule that never ends, or a checkpoint that does not tell
    per_unit = total / length
    if asked * per_unit <= end:
        return None
    unit = 'epoch' if by_epoch else 'iteration'
    return (f'its lr schedule ends at {unit} {end / per_unit:g}, so every {unit} after it would '
            "train at the schedule's final lr")


def _refusal(cfg: Config, argv: List[str], by_epoch: bool, saved: int, asked: int,
             done: int, why: str) -> str:
    unit = 'epochs' if by_epoch else 'iterations'
    finished = done >= saved
    state = f'finished all {saved}' if finished else f'at {done} of {saved}'
    head = (f'--resume: {cfg.load_from} belongs to a run of {saved} {unit} ({state}), but this '
            f'command asks for {asked}: {why}.')
    kept = _other_arguments(argv)
    fresh = _command(kept + _length_args(by_epoch, asked) + [
        '--work-dir', 'NEW_WORK_DIR', '--cfg-options', f'load_from={cfg.load_from}'])
    fresh = (f'train {asked} {unit} from its weights with a fresh schedule (a new run):'
             f'\n    {fresh}')
    if finished:
        return f'{head} The run is finished (nothing is left to resume). To {fresh}'
    resume = _command(kept + ['--work-dir', cfg.work_dir, '--resume', cfg.load_from]
                      + _length_args(by_epoch, saved))
    return (f'{head} Either continue the run to its {saved} {unit}:\n    {resume}\nor {fresh}')


def _length_args(by_epoch: bool, length: int) -> List[str]:
    return ['--epochs', str(length)] if by_epoch else [
        '--cfg-options', f'train_cfg.max_iters={length}']


def _command(args: List[str]) -> str:
    return shlex.join(['python', 'tools/train.py', *args])


def _other_arguments(argv: List[str]) -> List[str]:
    """``argv`` (train.py's arguments) without ``--resume [PATH]`` and the options the
    suggested commands set themselves."""
    kept, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        name = arg.split('=', 1)[0]
        if name == '--resume':
            nxt = argv[i + 1] if i + 1 < len(argv) else ''
            skip = '=' not in arg and bool(nxt) and not nxt.startswith('-') \
                and not nxt.endswith('.py')  # its optional PATH, not the config
            continue
        if name in _REPLACED:
            skip = '=' not in arg and _REPLACED[name]
            continue
        kept.append(arg)
    return kept
