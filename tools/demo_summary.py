#!/usr/bin/env python
"""Print and draw what a LocalMIM pre-training run produced: the loss of every supervised layer,
the monitor's k-NN curve, how far the reconstructions are from the mean target, the checkpoint
and what to do next. Used by tools/demo.sh; works on any LocalMIM work dir.

    python tools/demo_summary.py WORK_DIR --config CONFIG [--images data/sample_cifar/val]

Writes ``WORK_DIR/curves.png`` (per-layer loss and k-NN top-1 against the iteration, and the
learned-vs-mean bars) and ``WORK_DIR/summary.json`` (the printed figures).
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from collections import defaultdict

LEARNED_VS_MEAN_SEED = 0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dir', help='the --work-dir of a tools/train.py run')
    parser.add_argument('--config', required=True, help='the config of the run')
    parser.add_argument('--images', default='data/sample_cifar/val',
                        help='images for the learned-vs-mean figure (files or folders)')
    parser.add_argument('--started', type=float,
                        help='when the run started (seconds since the epoch; tools/demo.sh): '
                        'the summary then records the wall-clock of run and summary')
    parser.add_argument('--load-before', type=float, nargs=3,
                        help='the 1/5/15-min load average when the run started (tools/demo.sh)')
    return parser.parse_args()


def read_scalars(work_dir: str):
    runs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not runs:
        raise SystemExit(f'no training log (*/vis_data/scalars.json) under {work_dir}; did '
                         'tools/train.py run with this --work-dir?')
    with open(runs[-1]) as f:
        return [json.loads(line) for line in f], osp.dirname(runs[-1])


def loss_curves(records) -> dict:
    """{loss term: ([iteration], [value])} of the logged training iterations."""
    curves = defaultdict(lambda: ([], []))
    for record in records:
        for key, value in record.items():
            if key.startswith('loss'):
                curves[key][0].append(record['step'])
                curves[key][1].append(value)
    return dict(curves)


def loss_by_epoch(records) -> dict:
    """Mean of each logged loss term per epoch."""
    per_epoch = defaultdict(lambda: defaultdict(list))
    for record in records:
        for key, value in record.items():
            if key.startswith('loss'):
                per_epoch[record['epoch']][key].append(value)
    return {epoch: {k: sum(v) / len(v) for k, v in terms.items()}
            for epoch, terms in sorted(per_epoch.items())}


def knn_curve(records) -> list:
    """[(iteration, epoch, k-NN top-1 %)] written by RepresentationMonitorHook."""
    return [(r['step'], r.get('epoch'), r['monitor/knn_top1'])
            for r in records if 'monitor/knn_top1' in r]


def learned_vs_mean_of(config: str, checkpoint: str, images) -> dict:
    import torch
    from localmim_mm.analysis import ImageInput, build_model, find_images, model_input_size
    from localmim_mm.analysis.learned_vs_mean import learned_vs_mean
    model, _ = build_model(config, checkpoint, required=('backbone', 'neck', 'head'))
    size = model_input_size(model)
    paths = find_images([images])
    x = torch.cat([ImageInput(p, size, model.data_preprocessor).tensor() for p in paths])
    return learned_vs_mean(model, x, LEARNED_VS_MEAN_SEED), len(paths)


def git_revision() -> str:
    try:
        return subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                              check=True, cwd=osp.dirname(osp.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def ordered(keys):
    return sorted(keys, key=lambda k: (k != 'loss', len(k), k))


def draw_curves(path: str, curves: dict, knn: list, layers: dict) -> str:
    from localmim_mm.analysis.cli import use_agg_backend
    use_agg_backend()
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    for key in ordered(curves):
        if key != 'loss':
            axes[0].plot(*curves[key], label=key[len('loss_'):])
    axes[0].set(xlabel='iteration', ylabel='masked-cell loss (training batches)', yscale='log',
                title='loss of each supervised layer')
    axes[0].legend(fontsize=8)
    if knn:
        axes[1].plot([s for s, _, _ in knn], [v for _, _, v in knn], 'o-')
    axes[1].set(xlabel='iteration', ylabel='k-NN top-1 (%)',
                title='representation monitor: k-NN on validation images')
    names = list(layers)
    positions = range(len(names))
    axes[2].bar([p - 0.2 for p in positions], [layers[n].model for n in names], 0.4,
                label='model')
    axes[2].bar([p + 0.2 for p in positions], [layers[n].mean for n in names], 0.4,
                label='mean target in every cell')
    axes[2].set_xticks(list(positions), names)
    axes[2].set(ylabel='masked-cell loss', title='learned vs mean target (validation images)')
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main():
    args = parse_args()
    records, log_dir = read_scalars(args.work_dir)
    epochs = loss_by_epoch([r for r in records if 'loss' in r])
    first, last = min(epochs), max(epochs)
    print(f'\n[demo] loss per supervised layer (mean over the epoch), epoch {first} -> {last}:')
    for key in ordered(epochs[last]):
        print(f'    {key:<14} {epochs[first][key]:.4f} -> {epochs[last][key]:.4f}')

    knn = knn_curve(records)
    if knn:
        shown = ', '.join(f'{v:.0f}' for _, _, v in knn)
        print(f'\n[demo] k-NN top-1 of the encoder (%, monitor, iteration {knn[0][0]} -> '
              f'{knn[-1][0]}): {shown}')

    checkpoint = osp.join(args.work_dir, f'epoch_{last}.pth')
    if not osp.isfile(checkpoint):
        raise SystemExit(f'expected checkpoint {checkpoint} is missing')
    layers, num_images = learned_vs_mean_of(args.config, checkpoint, args.images)
    total_model = sum(r.model for r in layers.values())
    total_mean = sum(r.mean for r in layers.values())
    print(f'\n[demo] learned vs mean target: masked-cell loss on {num_images} validation images '
          f'({args.images}), the model against predicting the mean target in every cell:')
    for name, r in layers.items():
        print(f'    {name:<8} model {r.model:.4f}   mean target {r.mean:.4f}   '
              f'model / mean = {r.ratio:.3f}')
    print(f'    {"all":<8} model {total_model:.4f}   mean target {total_mean:.4f}   '
          f'model / mean = {total_model / total_mean:.3f}   (1 = learned nothing)')

    curves_png = draw_curves(osp.join(args.work_dir, 'curves.png'), loss_curves(records), knn,
                             layers)
    summary = dict(
        command=' '.join(['python'] + sys.argv), git_revision=git_revision(),
        cores=os.cpu_count(), load_before=args.load_before, load_after=os.getloadavg(),
        wall_clock_s=None if args.started is None else round(time.time() - args.started, 1),
        config=args.config, checkpoint=checkpoint, epochs=last,
        loss_first_epoch=epochs[first], loss_last_epoch=epochs[last],
        knn_top1=[dict(iteration=s, epoch=e, top1=v) for s, e, v in knn],
        learned_vs_mean=dict(images=args.images, seed=LEARNED_VS_MEAN_SEED,
                             layers={n: dict(model=r.model, mean=r.mean, ratio=r.ratio)
                                     for n, r in layers.items()},
                             all=dict(model=total_model, mean=total_mean,
                                      ratio=total_model / total_mean)))
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    print(f'\n[demo] curves (loss per layer, k-NN, learned vs mean): {curves_png}')
    pngs = sorted(glob.glob(osp.join(log_dir, 'vis_image', 'reconstruction_*.png')),
                  key=lambda p: (p.rsplit('_', 1)[0], int(p.rsplit('_', 1)[1][:-4])))
    if pngs:
        print('[demo] reconstructions while it trained (input, masked input, target and '
              'predicted HOG per layer; the number is the epoch):')
        for png in pngs:
            print(f'    {png}')
    print(f'\n[demo] runner checkpoint: {checkpoint}')
    print('[demo] next steps:')
    print(f'    train longer (a new run, whole schedule over N epochs): .venv/bin/python '
          f'tools/train.py {args.config} --epochs 300 --work-dir {args.work_dir}_300e')
    print(f'    continue from these weights with a fresh schedule: add --cfg-options '
          f'load_from={checkpoint}')
    print('    full recipe on GPUs: tools/dist_train.sh configs/localmim_vit-b.py 8')
    print('    your own images: docs/own_images.md; transfer: README.md, section "Transfer"')


if __name__ == '__main__':
    main()
