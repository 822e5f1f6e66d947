"""Peak memory and step time of the ViT-B detection backbone: ViTDet vs global attention.

    python -m tools.benchmarks.vitdet_memory [--out-dir DIR] [--tag TAG] [--device cpu|cuda]
                                             [--size 1024] [--batch 1] [--steps N] [--warmup N]
                                             [--threads N] [--with-cp] [--quick]

The two backbones are the ones the detection configs build, with the same weights:

* ``global``: ``mask-rcnn_vit-base-p16_sfp_1x_coco.py`` (mmpretrain ``VisionTransformer``,
  global attention in all 12 blocks, class token);
* ``vitdet``: ``mask-rcnn_vit-base-p16-vitdet_sfp_8xb8-amp-lsj-100e_coco.py`` (``ViTDet``: 14 x 14
  windows, global blocks 2, 5, 8, 11, decomposed relative position bias).

One step is forward + backward of the backbone alone on a ``batch`` x 3 x ``size`` x ``size``
input (loss: mean square of the output map), as in a detector's training step. Each backbone runs
in its own fresh process (no allocator state shared). On ``cuda`` the step runs under float16
autocast (the recipes' AMP); peak memory is ``torch.cuda.max_memory_allocated`` during a step
minus the memory allocated before it (weights, gradients of the previous step, input). On ``cpu``
the step is float32; peak memory is the growth of the process's peak resident set (``VmHWM``) over
the first step, measured from the resident set just before it (so it includes transient buffers
and allocator overhead). Step time: median of the timed steps after the warm-up ones.

Writes ``vitdet_memory[_TAG].json`` and ``.md`` to ``--out-dir`` with the provenance header
of every benchmark (:mod:`.core.provenance`: command, git revision, machine, load average before /
after; a load above what the measurement tolerates is flagged loudly). ``--quick``: 256 px,
1 warm-up + 1 timed step (smoke).
"""
import argparse
import json
import os.path as osp
import statistics
import subprocess
import sys
import time

from .core import REPO
from .core.provenance import Provenance
from .core.report import output_stem, write_outputs

DET = osp.join(REPO, 'configs', 'benchmarks', 'mmdetection')
BACKBONES = {
    'global': 'mask-rcnn_vit-base-p16_sfp_1x_coco.py',
    'vitdet': 'mask-rcnn_vit-base-p16-vitdet_sfp_8xb8-amp-lsj-100e_coco.py',
}
MB = 2**20


# --------------------------------------------------------------------------- worker (one backbone)
def build_backbone(name: str, with_cp: bool):
    """The config's backbone with seed-0 weights of the plain ViT-B (shared by both)."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.models import VisionTransformer
    import localmim_mm.det  # noqa: F401
    from mmdet.registry import MODELS

    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(DET, BACKBONES[name])).model.backbone
    cfg.init_cfg = None
    if name == 'vitdet':
        cfg.with_cp = with_cp
    backbone = MODELS.build(cfg)
    torch.manual_seed(0)
    weights = VisionTransformer(arch='base', img_size=224, patch_size=16, final_norm=False,
                                out_type='featmap')
    weights.init_weights()
    backbone.load_state_dict(weights.state_dict(), strict=False)  # vitdet: no cls_token
    return backbone


def _rss_mb(field: str) -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f'{field} not in /proc/self/status (Linux only)')


def run_worker(args) -> dict:
    import torch
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel('WARNING')  # building logs every parameter
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    backbone = build_backbone(args.worker, args.with_cp).to(device)
    backbone.train()  # (mmpretrain backbones' train() returns None)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)

    def step():
        autocast = torch.autocast(device.type, dtype=torch.float16, enabled=device.type == 'cuda')
        with autocast:
            out = backbone(x)[-1]
        out.float().square().mean().backward()

    result = dict(backbone=args.worker, config=BACKBONES[args.worker], step_s=[])
    if device.type == 'cpu':
        before = _rss_mb('VmRSS')
        step()  # the first step: its peak is the measured one
        result.update(peak_step_mb=_rss_mb('VmHWM') - before, resident_before_mb=before)
        warmup = max(args.warmup - 1, 0)
    else:
        warmup = args.warmup
    for i in range(warmup + args.steps):
        if device.type == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        start = time.perf_counter()
        step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
            peak = (torch.cuda.max_memory_allocated() - before) / MB
            result['peak_step_mb'] = max(result.get('peak_step_mb', 0.), peak)
            result['allocated_before_mb'] = before / MB
        if i >= warmup:
            result['step_s'].append(time.perf_counter() - start)
    result['step_s_median'] = statistics.median(result['step_s'])
    result['params_m'] = sum(p.numel() for p in backbone.parameters()) / 1e6
    return result


# --------------------------------------------------------------------------- driver
def run_backbone(name: str, args) -> dict:
    cmd = [sys.executable, '-m', 'tools.benchmarks.vitdet_memory', '--worker', name,
           '--device', args.device, '--size', str(args.size), '--batch', str(args.batch),
           '--steps', str(args.steps), '--warmup', str(args.warmup)]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    if args.with_cp:
        cmd.append('--with-cp')
    print(f'[vitdet_memory] {name}: {args.warmup} warm-up + {args.steps} timed steps at '
          f'{args.size} px on {args.device} ...', flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f'{name} worker failed ({proc.returncode}):\n{proc.stderr[-4000:]}')
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f'[vitdet_memory] {name}: peak {result["peak_step_mb"]:.0f} MB, median step '
          f'{result["step_s_median"]:.2f} s', flush=True)
    return result


def to_markdown(result: dict, prov: Provenance) -> str:
    lines = ['# ViT-B detection backbone: ViTDet vs global attention', '', prov.markdown(),
             f"One step: forward + backward of the backbone on {result['batch']} x 3 x "
              f"{result['size']} x {result['size']}, {result['precision']}; "
              f"{result['steps']} timed steps after {result['warmup']} warm-up, each backbone in "
              f"a fresh process. Peak memory: {result['memory_method']}.", '',
              '| backbone | config | params (M) | peak memory (MB) | step s (median) |',
              '|---|---|---|---|---|']
    for row in result['rows']:
        label = 'vitdet, with_cp' if row['backbone'] == 'vitdet' and result['with_cp'] else \
            row['backbone']
        lines.append(f"| {label} | `{row['config']}` | {row['params_m']:.1f} | "
                     f"{row['peak_step_mb']:.0f} | {row['step_s_median']:.3f} |")
    ratio = result['ratio_vitdet_to_global']
    lines += ['', f"ViTDet / global: memory {ratio['memory']:.2f}, step time "
                  f"{ratio['time']:.2f}.", '']
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default=osp.join(REPO, 'docs', 'results'))
    parser.add_argument('--tag', default=None,
                        help='suffix of the output file names (vitdet_memory_TAG.json / .md)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--size', type=int, default=None, help='input side (default 1024)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--steps', type=int, default=None,
                        help='timed steps (default 3 on cpu, 10 on cuda; --quick 1)')
    parser.add_argument('--warmup', type=int, default=None, help='warm-up steps (default 1)')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--with-cp', action='store_true',
                        help='ViTDet with gradient checkpointing (model.backbone.with_cp=True)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: 256 px, 1 warm-up + 1 timed step')
    parser.add_argument('--worker', choices=sorted(BACKBONES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.size = args.size or (256 if args.quick else 1024)
    args.steps = args.steps or (1 if args.quick else 3 if args.device == 'cpu' else 10)
    args.warmup = args.warmup if args.warmup is not None else 1
    for name, value in (('--size', args.size), ('--batch', args.batch), ('--steps', args.steps)):
        if value < 1:
            parser.error(f'{name}={value} must be >= 1')
    if args.size % 16:
        parser.error(f'--size={args.size} must be a multiple of the patch size 16')
    try:  # checked before minutes of measuring, not when writing the result
        output_stem(args.out_dir, 'vitdet_memory', args.tag)
    except ValueError as err:
        parser.error(str(err))
    if args.device == 'cuda':
        import torch
        if not torch.cuda.is_available():
            parser.error('--device cuda: no CUDA device is visible; use --device cpu')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)))  # the last stdout line, read by run_backbone
        return {}
    import torch
    threads = 1 if args.device == 'cuda' else (args.threads or torch.get_num_threads())
    prov = Provenance.start('vitdet_memory', argv, threads=threads, device=args.device,
                            quick=args.quick)
    rows = [run_backbone(name, args) for name in ('global', 'vitdet')]
    by_name = {row['backbone']: row for row in rows}
    result = dict(
        provenance=prov.finish(), device=args.device, size=args.size, batch=args.batch,
        steps=args.steps,
        warmup=args.warmup, quick=args.quick, with_cp=args.with_cp,
        precision='float16 autocast (AMP)' if args.device == 'cuda' else 'float32',
        memory_method=('torch.cuda.max_memory_allocated during a step minus the memory '
                       'allocated before it' if args.device == 'cuda' else
                       'growth of the peak resident set (VmHWM) over the first step, from the '
                       'resident set just before it'),
        rows=rows,
        ratio_vitdet_to_global=dict(
            memory=by_name['vitdet']['peak_step_mb'] / by_name['global']['peak_step_mb'],
            time=by_name['vitdet']['step_s_median'] / by_name['global']['step_s_median']))
    write_outputs(output_stem(args.out_dir, 'vitdet_memory', args.tag), result,
                  to_markdown(result, prov))
    return result


if __name__ == '__main__':
    main()
