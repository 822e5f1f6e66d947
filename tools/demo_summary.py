#!/usr/bin/env python
"""Print what a pre-training run produced: the loss per supervised layer, the checkpoint, and
what to do next. Used by tools/demo.sh; works on any LocalMIM work dir.

    python tools/demo_summary.py WORK_DIR [--config CONFIG]
"""
import argparse
import glob
import json
import os.path as osp
from collections import defaultdict


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dir', help='the --work-dir of a tools/train.py run')
    parser.add_argument('--config', help='the config of the run (for the next-step commands)')
    return parser.parse_args()


def read_scalars(work_dir: str):
    runs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not runs:
        raise SystemExit(f'no training log (*/vis_data/scalars.json) under {work_dir}; did '
                         'tools/train.py run with this --work-dir?')
    with open(runs[-1]) as f:
        return [json.loads(line) for line in f if '"loss"' in line]


def loss_by_epoch(records):
    """Mean of each logged loss term per epoch."""
    per_epoch = defaultdict(lambda: defaultdict(list))
    for record in records:
        for key, value in record.items():
            if key.startswith('loss'):
                per_epoch[record['epoch']][key].append(value)
    return {epoch: {k: sum(v) / len(v) for k, v in terms.items()}
            for epoch, terms in sorted(per_epoch.items())}


def main():
    args = parse_args()
    epochs = loss_by_epoch(read_scalars(args.work_dir))
    first, last = min(epochs), max(epochs)
    print(f'\n[demo] loss per supervised layer (mean over the epoch), epoch {first} -> {last}:')
    for key in sorted(epochs[last], key=lambda k: (k != 'loss', len(k), k)):
        print(f'    {key:<14} {epochs[first][key]:.4f} -> {epochs[last][key]:.4f}')
    checkpoint = osp.join(args.work_dir, f'epoch_{last}.pth')
    if not osp.isfile(checkpoint):
        raise SystemExit(f'expected checkpoint {checkpoint} is missing')
    print(f'\n[demo] runner checkpoint (for --resume / load_from): {checkpoint}')
    config = args.config or 'CONFIG'
    print('[demo] next steps:')
    print(f'    continue training:  .venv/bin/python tools/train.py {config} '
          f'--work-dir {args.work_dir} --resume')
    print('    full recipe on GPUs: tools/dist_train.sh configs/localmim_vit-b.py 8')
    print('    transfer: see README.md, section "Transfer"')


if __name__ == '__main__':
    main()
