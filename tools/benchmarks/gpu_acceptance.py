"""GPU acceptance: 20 AMP iterations of every pre-training recipe under ``configs/``.

    python -m tools.benchmarks.gpu_acceptance [--out-dir DIR] [--recipes PATTERN ...]
                                              [--iters 20] [--warmup 5] [--budget-min 10]
                                              [--no-throughput] [--quick]

For one GPU, in at most ``--budget-min`` minutes (recipes left when the budget runs out are
listed as skipped). Recipes: ``configs/localmim/*.py``, ``configs/lomar/*.py`` and the entry
points ``configs/localmim_*.py`` / ``configs/lomar_*.py``; a recipe whose model, per-GPU batch and
input size equal an earlier one's is listed as its duplicate and not run. FSDP recipes run here
as single-process AMP (no sharding), and say so.

Per recipe, as one GPU of the real run does it:

* the model of the config, built and initialised, in train mode;
* the recipe's optimiser wrapper (``build_optim_wrapper``: AdamW, paramwise settings,
  ``AmpOptimWrapper`` with dynamic loss scale; a recipe without AMP is run with
  ``AmpOptimWrapper`` and says so). The learning rate is the recipe's, scaled to the batch used
  with mmengine's linear rule (``auto_scale_lr``: ``lr * batch / base_batch_size``, what
  ``--auto-scale-lr`` gives on one GPU) and held constant: the schedulers are not run, so the
  20 iterations train at the post-warm-up rate;
* one synthetic batch at the recipe's per-GPU batch: random images put through the recipe's own
  train pipeline (without the image loading) and collate function, so input size, crops and
  anything the pipeline adds (e.g. masks) are the recipe's; on the GPU before the first step;
* ``model.train_step(batch, optim_wrapper)`` ``--iters`` times. The first ``--warmup`` steps are
  not timed; each timed step is bracketed by ``torch.cuda.synchronize()`` (no other host
  synchronisation: the loss terms stay on the GPU and are fetched once at the end).
  On out-of-memory the batch is halved until it fits; the batch used is reported.

Reported: step time (median of the timed steps), images/s, peak memory
(``torch.cuda.max_memory_allocated`` over the steps), every iteration's loss terms, whether all
are finite, and the final loss scale. Then the throughput table against MAE / SimMIM from
``python -m tools.benchmarks.throughput --batch 64``. Output: ``gpu_acceptance.json`` and
``gpu_acceptance.md`` in ``--out-dir`` (header: command, git revision, GPU, torch / CUDA
versions, load average). Exit status 1 when a recipe failed or produced a non-finite loss.

``--quick`` is a CPU smoke run of the tiny recipes (2 iterations, float32 ``OptimWrapper``:
mmengine's ``AmpOptimWrapper`` needs a GPU), used by the tests.
"""
import argparse
import fnmatch
import gc
import glob
import json
import os.path as osp
import random
import statistics
import sys
import time
from functools import partial
from typing import List, Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import FUNCTIONS, init_default_scope
from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.registry import MODELS

from . import throughput
from .core import REPO
from .core.models import build_model, model_cfg
from .core.optim import device_optim_wrapper
from .core.provenance import Provenance
from .core.report import write_outputs

RECIPE_GLOBS = ('configs/localmim/*.py', 'configs/lomar/*.py', 'configs/localmim_*.py',
                'configs/lomar_*.py')
THROUGHPUT_ARGS = ['--batch', '64']


# --------------------------------------------------------------------------- recipes
def find_recipes(patterns: Optional[List[str]], quick: bool) -> List[str]:
    """Config paths relative to the repository, recipe folders first, then entry points."""
    paths = []
    for pattern in RECIPE_GLOBS:
        paths += sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, pattern)))
    if quick:
        paths = [p for p in paths if 'tiny' in osp.basename(p)]
    if patterns:
        paths = [p for p in paths if any(fnmatch.fnmatch(p, f'*{pat}*') for pat in patterns)]
    return paths


def is_pretraining(model: dict) -> bool:
    algorithm = MODELS.get(model['type'])
    return isinstance(algorithm, type) and issubclass(algorithm, BaseSelfSupervisor)


def is_fsdp(cfg: Config) -> bool:
    text = json.dumps(dict(strategy=cfg.get('strategy'), runner=cfg.get('runner_type'),
                           wrapper=cfg.get('model_wrapper_cfg')), default=str)
    return 'FSDP' in text or 'FullyShard' in text


def train_pipeline(cfg: Config) -> list:
    dataset = cfg.train_dataloader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:  # dataset wrappers
        dataset = dataset.dataset
    return [dict(t) for t in dataset.pipeline if 'LoadImage' not in t['type']]


def synthetic_batch(cfg: Config, batch: int, device: torch.device) -> dict:
    """``batch`` random images through the recipe's pipeline and collate function."""
    pipeline = Compose(train_pipeline(cfg))
    crop = _crop_size(cfg)
    rng = np.random.default_rng(0)
    side = int(crop * 1.25)  # a bit larger than the crop, as an ImageNet photo
    samples = []
    for _ in range(batch):
        img = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        samples.append(pipeline(dict(img=img, img_shape=img.shape[:2],
                                     ori_shape=img.shape[:2])))
    collate_cfg = dict(cfg.train_dataloader.get('collate_fn', dict(type='pseudo_collate')))
    collate = partial(FUNCTIONS.get(collate_cfg.pop('type')), **collate_cfg)
    data = collate(samples)
    data['inputs'] = (data['inputs'].to(device) if isinstance(data['inputs'], torch.Tensor)
                      else [x.to(device) for x in data['inputs']])
    data['data_samples'] = [s.to(device) for s in data['data_samples']]
    return data


def _crop_size(cfg: Config) -> int:
    for step in train_pipeline(cfg):
        for key in ('scale', 'size', 'crop_size'):
            value = step.get(key)
            if isinstance(value, int):
                return value
            if isinstance(value, (tuple, list)) and value and isinstance(value[0], int):
                return max(value)
    return int(cfg.model.backbone.get('img_size', 224))


def lr_scale(cfg: Config, batch: int) -> float:
    base = (cfg.get('auto_scale_lr') or {}).get('base_batch_size')
    return batch / base if base else 1.


# --------------------------------------------------------------------------- one recipe
def run_recipe(cfg: Config, batch: int, args, device: torch.device, amp: bool) -> dict:
    model = build_model(model_cfg(cfg, default_preprocessor=None)).to(device).train()
    wrapper_cfg, wrapper_note = device_optim_wrapper(cfg.optim_wrapper.to_dict(), amp)
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    scale = lr_scale(cfg, batch)
    for group in wrapper.optimizer.param_groups:
        group['lr'] *= scale
    data = synthetic_batch(cfg, batch, device)
    cuda = device.type == 'cuda'
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, losses, names = [], [], None
    for i in range(args.iters):
        timed = i >= args.warmup
        if timed:
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
        log_vars = model.train_step(data, wrapper)
        if timed:
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        names = names or list(log_vars)
        losses.append(torch.stack([log_vars[k].detach().float() for k in names]))
    trajectory = torch.stack(losses).cpu()  # the one fetch of the loss values
    median = statistics.median(times)
    inputs = data['inputs']
    size = list(inputs.shape[-2:]) if isinstance(inputs, torch.Tensor) else list(
        inputs[0].shape[-2:])
    scaler = getattr(wrapper, 'loss_scaler', None)
    return dict(
        status='ok', batch=batch, input_size=size, optim_wrapper=type(wrapper).__name__,
        amp_dtype=str(getattr(wrapper, 'cast_dtype', None) or ('float16' if amp else 'float32')),
        wrapper_note=wrapper_note, lr=[g['lr'] for g in wrapper.optimizer.param_groups][0],
        lr_scale=scale, iterations=args.iters, timed_steps=len(times),
        step_s_median=median, step_s=times, images_per_s=batch / median,
        peak_mem_mb=(torch.cuda.max_memory_allocated() / 2**20 if cuda else None),
        losses={k: trajectory[:, j].tolist() for j, k in enumerate(names)},
        finite=bool(torch.isfinite(trajectory).all()),
        loss_scale_final=(float(scaler.get_scale()) if scaler is not None else None),
        params_m=sum(p.numel() for p in model.parameters()) / 1e6)


def run_with_oom_retry(cfg: Config, args, device: torch.device, amp: bool) -> dict:
    batch = args.batch or cfg.train_dataloader.batch_size
    while True:
        try:
            return run_recipe(cfg, batch, args, device, amp)
        except torch.cuda.OutOfMemoryError:
            pass  # leave the except block first, so that the failed step's tensors are freed
        _free(device)
        if batch == 1:
            return dict(status='failed: out of memory at batch 1')
        print(f'  out of memory at batch {batch}; retrying with {batch // 2}', flush=True)
        batch //= 2


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def run_all(args, device: torch.device, amp: bool, deadline: float) -> List[dict]:
    rows, seen = [], {}
    for path in find_recipes(args.recipes, args.quick):
        cfg = Config.fromfile(osp.join(REPO, path))
        model = model_cfg(cfg, default_preprocessor=None)
        row = dict(config=path, model=_describe(model),
                   batch_recipe=cfg.train_dataloader.batch_size, fsdp=is_fsdp(cfg))
        rows.append(row)
        if not is_pretraining(model):
            row['status'] = 'skipped: not a pre-training recipe'
            continue
        key = json.dumps([model, row['batch_recipe'], train_pipeline(cfg)], sort_keys=True,
                         default=str)
        if key in seen:
            row['status'] = f'duplicate of {seen[key]} (same model, batch and input)'
            continue
        seen[key] = path
        if time.time() > deadline:
            row['status'] = f'skipped: time budget of {args.budget_min} min spent'
            continue
        print(f'{path}: {row["model"]}, batch {row["batch_recipe"]}', flush=True)
        try:
            row.update(run_with_oom_retry(cfg, args, device, amp))
        except Exception as err:  # report and go on with the other recipes
            row['status'] = f'failed: {type(err).__name__}: {err}'
        _free(device)
        if row['fsdp']:
            row['note'] = 'FSDP recipe, run here as single-process AMP (unsharded)'
        print(f'  {_summary(row)}', flush=True)
    return rows


def _describe(model: dict) -> str:
    backbone = model.get('backbone', {})
    arch = backbone.get('arch', '')
    arch = arch if isinstance(arch, str) else f"{arch.get('embed_dims', '?')}d"
    target = model.get('target_generator', {}).get('type', 'pixels')
    return f"{model['type']} {backbone.get('type', '')} {arch} ({target})".replace('  ', ' ')


def _summary(row: dict) -> str:
    if row.get('status') != 'ok':
        return row.get('status', '')
    mem = f", {row['peak_mem_mb'] / 1024:.1f} GiB" if row['peak_mem_mb'] else ''
    loss = row['losses']['loss']
    return (f"batch {row['batch']}: {row['step_s_median']:.3f} s/step, "
            f"{row['images_per_s']:.0f} images/s{mem}, loss {loss[0]:.4f} -> {loss[-1]:.4f}")


# --------------------------------------------------------------------------- throughput table
def run_throughput(out_dir: str, quick: bool) -> dict:
    """The ``throughput`` benchmark's command, run in this process."""
    throughput_dir = osp.join(out_dir, 'throughput')
    argv = THROUGHPUT_ARGS + ['--out-dir', throughput_dir] + (['--quick'] if quick else [])
    try:
        result = throughput.main(argv)
    except Exception as err:
        return dict(status=f'failed: {type(err).__name__}: {err}', argv=argv)
    outputs = sorted(glob.glob(osp.join(throughput_dir, '*.md')))
    return dict(status='ok', argv=argv, result=result,
                markdown=[osp.relpath(p, out_dir) for p in outputs])


# --------------------------------------------------------------------------- output
def to_markdown(result: dict, prov: Provenance) -> str:
    lines = [
        '# GPU acceptance: AMP iterations of every pre-training recipe', '', prov.markdown(),
        f"- CUDA {result['cuda']['cuda']}, cuDNN {result['cuda']['cudnn']}",
        f"- {result['iterations']} iterations per recipe, the first {result['warmup']} untimed; "
        'one synthetic batch through the recipe\'s pipeline; the recipe\'s optimiser at its lr '
        'scaled to the batch used (auto_scale_lr rule), held constant', '',
        '| recipe | model | batch (recipe) | px | wrapper | step s (median) | images/s | '
        'peak GiB | loss first -> last | finite | note |',
        '|---|---|---|---|---|---|---|---|---|---|---|']
    for row in result['recipes']:
        name = osp.basename(row['config'])
        if row.get('status') != 'ok':
            lines.append(f"| {name} | {row['model']} | {row['batch_recipe']} | | | "
                         f"{row.get('status')} | | | | | {row.get('note', '')} |")
            continue
        mem = f"{row['peak_mem_mb'] / 1024:.1f}" if row['peak_mem_mb'] is not None else '-'
        loss = row['losses']['loss']
        notes = '; '.join(n for n in (row.get('wrapper_note'), row.get('note')) if n)
        lines.append(
            f"| {name} | {row['model']} | {row['batch']} ({row['batch_recipe']}) | "
            f"{'x'.join(map(str, row['input_size']))} | {row['optim_wrapper']} "
            f"{row['amp_dtype'].replace('torch.', '')} | {row['step_s_median']:.3f} | "
            f"{row['images_per_s']:.1f} | {mem} | {loss[0]:.4f} -> {loss[-1]:.4f} | "
            f"{'yes' if row['finite'] else '**NO**'} | {notes} |")
    lines += ['', '## Loss trajectories (every iteration)', '']
    for row in result['recipes']:
        if row.get('status') == 'ok':
            lines.append(f"`{osp.basename(row['config'])}`:")
            lines.append('')
            for term, values in row['losses'].items():
                lines.append(f"- {term}: {', '.join(f'{v:.4f}' for v in values)}")
            lines.append('')
    table = result.get('throughput')
    lines += ['## Throughput against MAE / SimMIM', '']
    if table is None:
        lines.append('not run (--no-throughput)')
    elif table['status'] != 'ok':
        lines.append(f"`python -m tools.benchmarks.throughput {' '.join(table['argv'])}`: "
                     f"{table['status']}")
    else:
        lines.append(f"`python -m tools.benchmarks.throughput {' '.join(table['argv'])}`:")
        lines.append('')
        for path in table['markdown']:
            with open(osp.join(result['out_dir'], path)) as f:
                lines.append(f.read().strip())
            lines.append('')
    return '\n'.join(lines) + '\n'


def parse_args(argv: List[str]):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default='work_dirs/benchmarks/gpu_acceptance')
    parser.add_argument('--recipes', nargs='+', default=None, metavar='PATTERN',
                        help='only configs whose path contains one of these (shell patterns)')
    parser.add_argument('--iters', type=int, default=None, help='iterations (default 20)')
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed first iterations (default 5; --quick: 1)')
    parser.add_argument('--batch', type=int, default=None,
                        help='per-GPU batch for every recipe (default: the recipe\'s)')
    parser.add_argument('--budget-min', type=float, default=10.,
                        help='skip the recipes left after this many minutes (default 10)')
    parser.add_argument('--no-throughput', action='store_true',
                        help='skip the throughput table against MAE / SimMIM')
    parser.add_argument('--quick', action='store_true',
                        help='CPU smoke run: tiny recipes, 2 iterations, float32')
    args = parser.parse_args(argv)
    args.iters = args.iters or (2 if args.quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 5)
    if not 0 <= args.warmup < args.iters:
        parser.error(f'--warmup={args.warmup} must be >= 0 and below --iters={args.iters}')
    if args.batch is not None and args.batch < 1:
        parser.error(f'--batch={args.batch} must be >= 1')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    start = time.time()
    if not args.quick and not torch.cuda.is_available():
        raise SystemExit('gpu_acceptance needs a CUDA GPU (or --quick for the CPU smoke run)')
    device = torch.device('cpu' if args.quick else 'cuda')
    amp = device.type == 'cuda'
    init_default_scope('mmpretrain')
    MMLogger.get_current_instance().setLevel('WARNING')  # init_weights logs every parameter
    torch.manual_seed(0)
    np.random.seed(0)  # the pipeline's random crops and flips
    random.seed(0)
    prov = Provenance.start('gpu_acceptance', argv, threads=torch.get_num_threads(),
                            device=str(device), quick=args.quick)
    result = dict(iterations=args.iters, warmup=args.warmup, quick=args.quick,
                  out_dir=args.out_dir,
                  cuda=dict(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version()
                            if amp else None))
    result['recipes'] = run_all(args, device, amp, deadline=start + 60 * args.budget_min)
    if not args.no_throughput:
        result['throughput'] = run_throughput(args.out_dir, args.quick)
    result['elapsed_s'] = time.time() - start
    result['ok'] = all(r['status'].startswith(('ok', 'duplicate', 'skipped: not'))
                       and r.get('finite', True) for r in result['recipes'])
    result['provenance'] = prov.finish()
    write_outputs(osp.join(args.out_dir, 'gpu_acceptance'), result, to_markdown(result, prov),
                  default=str)
    return result




if __name__ == '__main__':
    sys.exit(0 if main()['ok'] else 1)
