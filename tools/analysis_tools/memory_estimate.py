#!/usr/bin/env python
"""GPU memory per GPU that pre-training recipes need (model states + activations).

    python tools/analysis_tools/memory_estimate.py CONFIG [CONFIG ...] [--gpus N] \
        [--out docs/results/memory_estimate.md]

For each config: the strategy (DDP, or FSDP when the config's ``strategy`` is ``FSDPStrategy``),
the GPUs it shards over (the config's ``gpus``, else ``--gpus``), its batch per GPU and AMP
setting; then weights, gradients, AdamW state, the strategy's buffers (DDP gradient buckets /
FSDP gathered units) and the activations at that batch, in GiB per GPU. How each is computed:
``localmim_mm/analysis/memory.py``. Builds each model on the CPU and runs two small forward
passes (ViT-H: ~3 GB of RAM, a minute).
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

import torch

from localmim_mm.analysis.memory import recipe_memory

COLUMNS = ('weights', 'gradients', 'adamw', 'strategy_buffers', 'activations', 'total')


def parse_args():
    parser = argparse.ArgumentParser(description='Per-GPU memory of pre-training recipes')
    parser.add_argument('configs', nargs='+', help='pre-training config files')
    parser.add_argument('--gpus', type=int, help='GPUs when the config does not say (default 8)')
    parser.add_argument('--with-ddp', action='store_true',
                        help='for FSDP configs, also the same recipe with DDP (for comparison)')
    parser.add_argument('--out', help='write a markdown table here (and the numbers as .json)')
    return parser.parse_args()


def header() -> str:
    revision = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                              text=True).stdout.strip() or 'unknown'
    load = ', '.join(f'{v:.2f}' for v in os.getloadavg())
    command = ' '.join(['python', *sys.argv])
    return (f'<!-- command: {command} -->\n<!-- git revision {revision}, torch '
            f'{torch.__version__}, {time.strftime("%Y-%m-%d")}, load average {load} (not a '
            'timing: the figures do not depend on load) -->\n')


def table(results) -> str:
    lines = ['| config | strategy | batch / GPU | params | weights | grads | AdamW | DDP buckets '
             '/ FSDP gathered units | activations | **total / GPU** |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        gib = r['per_gpu_gib']
        strategy = r['strategy'] + (f' over {r["gpus"]} GPUs' if r['strategy'] == 'FSDP' else '')
        if r['strategy'] == 'DDP' and 'fsdp' in osp.basename(r['config']):
            strategy = 'DDP (for comparison)'
        cells = [f'`{osp.splitext(osp.basename(r["config"]))[0]}`', strategy,
                 str(r['batch_per_gpu']), f'{r["trainable_params"] / 1e6:.1f} M']
        cells += [f'{gib[c]:.1f} GiB' for c in COLUMNS[:-1]] + [f'**{gib["total"]:.1f} GiB**']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def main():
    args = parse_args()
    results = []
    for config in args.configs:
        result = recipe_memory(config, args.gpus)
        results.append(result)
        if args.with_ddp and result['strategy'] == 'FSDP':
            results.append(recipe_memory(config, args.gpus, strategy='DDP'))
        print(f'{config}: {result["per_gpu_gib"]["total"]:.1f} GiB per GPU '
              f'({result["strategy"]}, batch {result["batch_per_gpu"]} per GPU)', flush=True)
    text = table(results)
    print(text)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(header() + '\n' + text)
        with open(osp.splitext(args.out)[0] + '.json', 'w') as f:
            json.dump(results, f, indent=1)
        print(f'wrote {args.out} and its .json')


if __name__ == '__main__':
    main()
