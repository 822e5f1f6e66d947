#!/usr/bin/env python
"""Train a model from an mmpretrain / mmdet / mmseg config (mmpretrain's arguments).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp | --no-amp]
                                 [--epochs N] [--auto-scale-lr] [--cfg-options k=v ...]
                                 [--launcher pytorch]

Differences from the stock script, all on the launching side (the recipe is never edited):
* runs distributed on CPU-only machines with the ``gloo`` backend (``nccl`` on GPUs);
* ``--no-amp`` trains an AMP recipe in float32; AMP asked for without a GPU is a clear error;
* mmengine runner checkpoints load under torch >= 2.6 (``--resume`` / ``load_from``);
* ``--resume`` skips truncated checkpoints (it names them) for the newest whole one;
* one live run per work dir; workers of ``tools/dist_train.sh`` die with their launcher;
* a mistyped registered type gets a "did you mean".
``runner_type`` (e.g. ``FlexibleRunner`` with an FSDP / DeepSpeed ``strategy``) as in mmpretrain's
script; ``compile`` compiles the model's forward (docs/scale_out.md).
* ``--epochs N`` shortens or lengthens a run with its whole lr schedule (localmim_mm/runtime/cli/
  schedule.py); any run of at least one iteration trains (a phase of the schedule that gets
  fewer than 2 iterations is dropped, saying so);
* every checkpoint records its run length: ``--resume`` of a finished run says so, and one that
  would change the length is refused with the commands that continue it or start a longer run
  (localmim_mm/runtime/checkpoints/resume_length.py);
* a ``--cfg-options`` key the config does not have is refused with the closest existing one;
* an error ends with one line ``error: ...`` (``--debug``: the traceback).
"""
import os

LAUNCHER_PID = os.getppid()  # before the slow imports: workers die with their launcher

import argparse  # noqa: E402
import os.path as osp  # noqa: E402
import sys  # noqa: E402

from mmengine.config import Config  # noqa: E402

from localmim_mm import runtime  # noqa: E402
from localmim_mm.runtime.checkpoints.resume_length import check_resume_length  # noqa: E402
from localmim_mm.runtime.cli import (add_shared_arguments, check_config_path,  # noqa: E402
                                    check_override_keys, fit_schedule_to_run, parse_tool_args,
                                    registry_hints, run_tool, set_epochs)
from localmim_mm.runtime.hooks import RunLengthCheck  # noqa: E402
from localmim_mm.runtime.launch import build_runner, guard_training_run, prepare_launch  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model (LocalMIM plugin for mmpretrain)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or from the latest one in the work dir if no '
        'path is given')
    parser.add_argument('--amp', action='store_true', help='enable mixed precision (GPU only)')
    parser.add_argument('--no-amp', action='store_true',
                        help='train an AMP recipe in float32 (needed on CPU)')
    parser.add_argument(
        '--epochs', type=int,
        help='train for N epochs: sets train_cfg.max_epochs and rescales every lr / momentum '
        'scheduler by N / the recipe\'s epochs (warm-up included), so the run ends at the '
        'recipe\'s final lr')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the real batch size / auto_scale_lr.base_batch_size')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='disable pin_memory in the dataloaders')
    parser.add_argument('--no-persistent-workers', action='store_true',
                        help='disable persistent_workers in the dataloaders')
    add_shared_arguments(parser)
    return parse_tool_args(parser)


def merge_args(cfg: Config, args) -> Config:
    if args.cfg_options is not None:
        check_override_keys(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    if args.epochs is not None:
        set_epochs(cfg, args.epochs, args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.auto_scale_lr:
        cfg.auto_scale_lr = cfg.get('auto_scale_lr', {})
        cfg.auto_scale_lr.enable = True
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if not loader:
            continue
        if args.no_pin_memory:
            loader['pin_memory'] = False
        if args.no_persistent_workers:
            loader['persistent_workers'] = False
    return cfg


def main():
    args = parse_args()
    runtime.enable()
    check_config_path(args.config)
    cfg = merge_args(Config.fromfile(args.config), args)
    guard_training_run(cfg, args.launcher, LAUNCHER_PID, auto_resume=args.resume == 'auto')
    check_resume_length(cfg, args.config, sys.argv[1:], args.epochs)
    prepare_launch(cfg, args.launcher, amp=args.amp, no_amp=args.no_amp)
    with registry_hints():
        runner = build_runner(cfg)
        runner.register_hook(RunLengthCheck(args.config))
        fit_schedule_to_run(runner)
        runner.train()


if __name__ == '__main__':
    run_tool(main)
