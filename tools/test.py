#!/usr/bin/env python
"""Evaluate a checkpoint with a config's test loop (mmpretrain's arguments).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--cfg-options k=v ...]
                                           [--launcher pytorch]
Runs on CPU-only machines too (gloo when distributed). Logs the dataset root, split and number
of images it evaluates; ``val_dataloader.*`` overrides reach a test loader that the config derives
from the val one (``test_dataloader = val_dataloader``), and overrides that could not change the
evaluation are refused (``localmim_mm/runtime/cli/test_split.py``), as are keys the config does
not have (with the closest existing one). An error ends with one line ``error: ...`` (``--debug``:
the traceback).
"""
import os

LAUNCHER_PID = os.getppid()  # before the slow imports: workers die with their launcher

import argparse  # noqa: E402
import os.path as osp  # noqa: E402

from mmengine.config import Config  # noqa: E402

from localmim_mm import runtime  # noqa: E402
from localmim_mm.runtime.cli import (add_shared_arguments, check_config_path,  # noqa: E402
                                    check_override_keys, merge_test_options, parse_tool_args,
                                    registry_hints, run_tool)
from localmim_mm.runtime.hooks import EvaluatedSplitHook  # noqa: E402
from localmim_mm.runtime.launch import build_runner, guard_worker, prepare_launch  # noqa: E402
from localmim_mm.runtime.launch.training_run import check_load_from  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Test (evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the evaluation logs')
    parser.add_argument('--out', help='dump the metrics to this file (.json / .pkl / .yaml)')
    add_shared_arguments(parser)
    return parse_tool_args(parser)


def main():
    args = parse_args()
    guard_worker(args.launcher, LAUNCHER_PID)
    check_config_path(args.config)
    cfg = Config.fromfile(args.config)
    check_override_keys(cfg, args.cfg_options)
    if not osp.exists(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint!r} does not exist; give the path of a '
                         '.pth file written by tools/train.py or a published model')
    check_load_from(args.checkpoint)
    runtime.enable()
    merge_test_options(cfg, args.cfg_options)
    cfg.work_dir = args.work_dir or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if cfg.get('test_cfg') is None:
        raise SystemExit(f'{args.config} has no test loop (test_cfg); pre-training configs are '
                         'evaluated through their fine-tuning configs under configs/benchmarks/')
    if cfg.get('optim_wrapper') is not None and cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
        cfg.optim_wrapper.type = 'OptimWrapper'  # testing never steps an optimizer
        cfg.optim_wrapper.pop('loss_scale', None)
    prepare_launch(cfg, args.launcher)
    with registry_hints():
        runner = build_runner(cfg)
        runner.register_hook(EvaluatedSplitHook())
        metrics = runner.test()
    if args.out:
        from mmengine.fileio import dump
        dump(metrics, args.out)


if __name__ == '__main__':
    run_tool(main)
