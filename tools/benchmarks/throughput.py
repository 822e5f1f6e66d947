"""Time full pre-training steps of LocalMIM next to mmpretrain's MAE, MaskFeat and SimMIM.

    python -m tools.benchmarks.throughput [--out-dir docs/results] [--tag TAG] [--batch 8]
        [--steps 10] [--warmup 2] [--quick] [--profile] [--cpu] [--threads N]
        [--groups vit swin vit448 variants]

One step is what the mmengine Runner does per iteration: ``model.train_step`` (data preprocessor,
forward, loss, backward, AdamW step) through an ``OptimWrapper`` (float32, CPU) or an
``AmpOptimWrapper`` (float16 autocast + dynamic loss scale, when CUDA is present). The models of a
comparison group share batch and image size (except the reference SimMIM-192 row, which runs at
its stock 192 px) and are timed round-robin in one process: each repetition runs one step of every
model, in an order rotated by one each repetition. Warm-up repetitions are not recorded.

Masks that mmpretrain draws in the data pipeline (MaskFeat's ``BEiTMaskGenerator``, SimMIM's
``SimMIMMaskGenerator``) are drawn once, outside the timed step; MAE, LocalMIM and LoMaR draw their
masks inside the model, so inside the step.

Reported per model: median step time, inter-quartile range and min/max, images/s, ratio to the
group's reference, peak memory and two shares of the step, timed inside it (wall clock on CPU,
CUDA events on GPU), medians over the timed steps:

* ``target_share_median`` for models with a ``target_generator``: its forward (forward hooks);
* ``layout_share`` for LocalMIM Swin models: the calls of ``build_window_layout`` as looked up in
  ``localmim_mm.models.backbones.localmim_swin`` (that module attribute is wrapped by a timer while
  the group runs); ``None`` with a ``layout_share_status`` when the module has no such attribute.

Peak memory is ``torch.cuda.max_memory_allocated`` on GPU; on CPU it is the bytes of parameters,
gradients and AdamW state plus the tensors saved for backward during one step (deduplicated by
storage): a lower bound of the step's peak that ignores transient buffers.

The ``variants`` group times, at ViT-B/224, the methods of ``learning_efficiency`` (LocalMIM
HOG / pixel, its two ablations, MAE), built by :func:`.core.methods.method_config`; that script
calls :func:`.core.timing.time_models` with the same configs to get their per-image step costs.

Outputs ``throughput[_TAG].json`` and ``.md`` (default folder ``docs/results``; ``--quick``:
``work_dirs/benchmarks``) headed by the command, git revision, machine and load average before
and after the run (:mod:`.core.provenance`), with a loud warning when the load exceeded the cores.
"""
import argparse
import platform
from functools import partial
from typing import Callable, List

import torch
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

import localmim_mm.models.backbones.localmim_swin as localmim_swin_module

from .core.methods import EFFICIENCY_METHODS, method_config
from .core.models import Unavailable, build_model, load_config, model_cfg, pipeline_step
from .core.provenance import Provenance, cpu_model
from .core.report import output_stem, write_outputs
from .core.timing import CallTimer, TimedModel, measure, summarise

LAYOUT_FUNCTION = 'build_window_layout'


# --------------------------------------------------------------------------- model builders
def localmim_vit(img_size: int):
    model = model_cfg(load_config('localmim_vit'))
    model['backbone']['img_size'] = img_size
    return model, None


def mae_vit(img_size: int):
    model = model_cfg(load_config('mae'))
    model['backbone']['img_size'] = img_size
    model['neck']['num_patches'] = (img_size // model['backbone']['patch_size']) ** 2
    return model, None


def maskfeat_vit(img_size: int):
    cfg = load_config('maskfeat')
    if img_size != 224:
        raise Unavailable(f'mmpretrain HOGGenerator hard-codes a 14x14 token grid (224 px); '
                          f'got {img_size} px')
    return model_cfg(cfg), pipeline_step(cfg, 'BEiTMaskGenerator')


def simmim_swin(img_size: int):
    cfg = load_config('simmim')
    model = model_cfg(cfg)
    mask_gen = pipeline_step(cfg, 'SimMIMMaskGenerator')
    model['backbone']['img_size'] = img_size
    if img_size != 192:  # the 224 px SimMIM Swin-B uses window 7 (its fine-tuning setting)
        model['backbone']['stage_cfgs'] = dict(block_cfgs=dict(window_size=img_size // 32))
        mask_gen['input_size'] = img_size
    return model, mask_gen


def localmim_swin(img_size: int):
    model = model_cfg(load_config('localmim_swin'))
    model['backbone']['img_size'] = img_size
    return model, None


def lomar_vit(img_size: int):
    model = model_cfg(load_config('lomar'))
    model['backbone']['img_size'] = img_size
    return model, None


def _efficiency_row(name: str, img_size: int):
    return method_config(name, img_size=img_size), None


# Rows whose modules are written elsewhere in this project; the others must build.
OPTIONAL = {'LocalMIM Swin-B', 'LoMaR ViT-B'}
# group -> title, reference row, rows as (name, builder, fixed image size or None)
GROUPS = {
    'vit': dict(title='ViT-B/16', reference='MAE ViT-B', rows=[
        ('LocalMIM ViT-B', localmim_vit, None), ('MAE ViT-B', mae_vit, None),
        ('MaskFeat ViT-B', maskfeat_vit, None), ('LoMaR ViT-B', lomar_vit, None)]),
    'swin': dict(title='Swin-B', reference='SimMIM Swin-B 192px', rows=[
        ('LocalMIM Swin-B', localmim_swin, None),
        ('SimMIM Swin-B 192px', simmim_swin, 192),
        ('SimMIM Swin-B', simmim_swin, None)]),
    'vit448': dict(title='ViT-B/16 at high resolution', reference='MAE ViT-B', rows=[
        ('LoMaR ViT-B', lomar_vit, None), ('MAE ViT-B', mae_vit, None)]),
    'variants': dict(title='ViT-B/16, the learning-efficiency methods', reference='MAE ViT-B',
                     rows=[(f'{name} ViT-B', partial(_efficiency_row, name), None)
                           for name in EFFICIENCY_METHODS]),
}
DEFAULT_GROUPS = ['vit', 'swin', 'vit448']


def builds_window_layouts(model: torch.nn.Module) -> bool:
    """Whether the model's backbone is defined in the LocalMIM Swin module."""
    backbone = getattr(model, 'backbone', None)
    return type(backbone).__module__ == localmim_swin_module.__name__


def build_runner(name: str, builder: Callable, img_size: int, batch: int,
                 device: torch.device, amp: bool):
    """A TimedModel, or the reason why the model is not available."""
    try:
        cfg, mask_gen = builder(img_size)
        model = build_model(cfg)
    except Unavailable as err:
        return None, str(err)
    except Exception as err:
        if name not in OPTIONAL:
            raise
        return None, f'build failed: {type(err).__name__}: {err}'
    return TimedModel(name, model, mask_gen, batch, img_size, device, amp), None


# --------------------------------------------------------------------------- timing
def run_group(key: str, args, device: torch.device, amp: bool) -> dict:
    group = GROUPS[key]
    size = args.sizes.get(key, args.vit_size)
    batch = args.batch_448 if key == 'vit448' else args.batch
    runners, rows = [], []
    for name, builder, fixed_size in group['rows']:
        img_size = fixed_size or size
        runner, reason = build_runner(name, builder, img_size, batch, device, amp)
        rows.append(dict(name=name, img_size=img_size, batch=batch,
                         status='ok' if runner else f'not available: {reason}'))
        if runner:
            runners.append(runner)
            print(f'[{key}] built {name} ({img_size} px, batch {batch})', flush=True)
        else:
            print(f'[{key}] {name}: not available: {reason}', flush=True)
    if key == 'vit448' and not any(r.name.startswith('LoMaR') for r in runners):
        for row in rows:
            row['status'] = 'skipped: no LoMaR model to compare with'
        runners = []

    layout_users = [r for r in runners if builds_window_layouts(r.model)]
    with CallTimer(localmim_swin_module, LAYOUT_FUNCTION, device) as layout_timer:
        for runner in layout_users:
            runner.layout_timer = layout_timer
        measure(runners, args.steps, args.warmup, device, log_prefix=f'[{key}] ')

    by_name = {r.name: r for r in runners}
    for row in rows:
        runner = by_name.get(row['name']) if row['status'] == 'ok' else None
        if runner is not None:
            row.update(summarise(runner))
            if args.profile:
                row['profile_top_ops'] = runner.profile(args.profile_top)
    add_ratios(rows, group['reference'])
    del runners, by_name, layout_users
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return dict(key=key, title=group['title'], reference=group['reference'], rows=rows)


def add_ratios(rows: List[dict], reference: str) -> None:
    ref = next((r for r in rows if r['name'] == reference and 'step_s_median' in r), None)
    for row in rows:
        if ref is not None and 'step_s_median' in row:
            row['ratio_to_reference'] = row['step_s_median'] / ref['step_s_median']


# --------------------------------------------------------------------------- output
def _share(row: dict, key: str) -> str:
    if key not in row:
        return '-'
    if row[key] is None:
        return row.get(f'{key}_status', 'not measured')
    return f'{100 * row[key]:.1f} %'


def to_markdown(result: dict, header: str) -> str:
    env = result['environment']
    precision = 'AMP fp16' if env['amp'] else 'fp32'
    lines = [f"# Training-step throughput ({env['device']}, {precision})", '', header,
             f"{result['steps']} timed steps after {result['warmup']} warm-up, models "
             f"interleaved round-robin. Memory: {result['memory_method']}. Target share: "
             f"{result['target_share_method']}. Layout share: {result['layout_share_method']}.",
             '']
    for group in result['groups']:
        lines += [f"## {group['title']} (ratio to {group['reference']})", '',
                  '| model | px | batch | step s (median) | IQR s | min-max s | images/s | '
                  'ratio | peak MB | target share | layout share |',
                  '|---|---|---|---|---|---|---|---|---|---|---|']
        for row in group['rows']:
            if 'step_s_median' not in row:
                lines.append(f"| {row['name']} | {row['img_size']} | {row['batch']} | "
                             f"{row['status']} | | | | | | | |")
                continue
            ratio = f"{row['ratio_to_reference']:.2f}" if 'ratio_to_reference' in row else '-'
            lines.append(
                f"| {row['name']} | {row['img_size']} | {row['batch']} | "
                f"{row['step_s_median']:.3f} | {row['step_s_q1']:.3f}-{row['step_s_q3']:.3f} | "
                f"{row['step_s_min']:.3f}-{row['step_s_max']:.3f} | {row['images_per_s']:.1f} | "
                f"{ratio} | {row['peak_mem_mb']:.0f} | {_share(row, 'target_share_median')} | "
                f"{_share(row, 'layout_share')} |")
        lines.append('')
        for row in group['rows']:
            if row.get('profile_top_ops'):
                lines += [f"Top ops of one {row['name']} step (self time):", '',
                          '| op | self ms | share | calls |', '|---|---|---|---|']
                lines += [f"| `{op['op']}` | {op['self_ms']:.1f} | {100 * op['share']:.1f} % | "
                          f"{op['calls']} |" for op in row['profile_top_ops']]
                lines.append('')
    return '\n'.join(lines) + '\n'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default=None,
                        help='folder of throughput[_TAG].{json,md} (default docs/results; '
                        '--quick: work_dirs/benchmarks)')
    parser.add_argument('--tag', default=None, help='suffix of the output file names')
    parser.add_argument('--groups', nargs='+', choices=sorted(GROUPS), default=DEFAULT_GROUPS,
                        help=f'comparison groups to run (default: {" ".join(DEFAULT_GROUPS)})')
    parser.add_argument('--batch', type=int, default=None,
                        help='batch of the ViT-B and Swin-B groups (default 8; --quick: 1)')
    parser.add_argument('--batch-448', type=int, default=None,
                        help='batch of the high-resolution group (default: --batch / 4, >= 1)')
    parser.add_argument('--vit-size', type=int, default=224)
    parser.add_argument('--swin-size', type=int, default=224,
                        help='image size of LocalMIM Swin-B and the second SimMIM row')
    parser.add_argument('--high-res-size', type=int, default=None,
                        help='image size of the LoMaR vs MAE group (default 448; --quick: 224)')
    parser.add_argument('--steps', type=int, default=None, help='timed steps (default 10)')
    parser.add_argument('--warmup', type=int, default=None, help='warm-up steps (default 2)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: batch 1, 1 warm-up + 2 steps, high-res group at 224 px')
    parser.add_argument('--profile', action='store_true',
                        help='after timing, profile one step of every model (torch.profiler)')
    parser.add_argument('--profile-top', type=int, default=15)
    parser.add_argument('--cpu', action='store_true', help='stay on CPU even if CUDA is present')
    parser.add_argument('--no-amp', dest='amp', action='store_false',
                        help='on CUDA: float32 steps instead of AMP (float16 autocast)')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    args = parser.parse_args(argv)
    quick = args.quick
    args.out_dir = args.out_dir or ('work_dirs/benchmarks' if quick else 'docs/results')
    args.batch = args.batch or (1 if quick else 8)
    args.batch_448 = args.batch_448 or max(1, args.batch // 4)
    args.steps = args.steps or (2 if quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 2)
    high_res = args.high_res_size or (224 if quick else 448)
    args.sizes = dict(vit=args.vit_size, swin=args.swin_size, vit448=high_res,
                      variants=args.vit_size)
    for name, value in [('--batch', args.batch), ('--batch-448', args.batch_448),
                        ('--steps', args.steps), ('--threads', args.threads or 1)]:
        if value < 1:
            parser.error(f'{name}={value} must be >= 1')
    try:
        output_stem(args.out_dir, 'throughput', args.tag)
    except ValueError as err:
        parser.error(str(err))
    return args


def environment(device: torch.device, amp: bool) -> dict:
    return dict(device=(torch.cuda.get_device_name() if device.type == 'cuda'
                        else f'CPU ({cpu_model()})'),
                amp=amp, torch=torch.__version__, threads=torch.get_num_threads(),
                python=platform.python_version())


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    init_default_scope('mmpretrain')
    MMLogger.get_current_instance().setLevel('WARNING')  # init_weights logs every parameter
    device = torch.device('cuda' if torch.cuda.is_available() and not args.cpu else 'cpu')
    amp = device.type == 'cuda' and args.amp
    provenance = Provenance.start('throughput', argv, torch.get_num_threads(),
                                  device=device.type, quick=args.quick)
    torch.manual_seed(0)
    groups = [run_group(key, args, device, amp) for key in args.groups]
    result = dict(
        provenance=provenance.finish(), environment=environment(device, amp),
        quick=args.quick, steps=args.steps, warmup=args.warmup,
        memory_method=('torch.cuda.max_memory_allocated over the timed steps'
                       if device.type == 'cuda' else
                       'params + grads + AdamW state + tensors saved for backward in one step '
                       '(CPU lower bound)'),
        target_share_method=('target_generator.forward timed inside the step by forward hooks '
                             '(CUDA events on GPU), median over steps of its share of the step'),
        layout_share_method=(f'calls of {localmim_swin_module.__name__}.{LAYOUT_FUNCTION} timed '
                             'inside the step by wrapping that module attribute (CUDA events on '
                             'GPU), median over steps of their share of the step'),
        groups=groups)
    write_outputs(output_stem(args.out_dir, 'throughput', args.tag), result,
                  to_markdown(result, provenance.markdown()))
    return result


if __name__ == '__main__':
    main()
