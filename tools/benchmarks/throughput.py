#!/usr/bin/env python
"""Time full pre-training steps of LocalMIM next to mmpretrain's MAE, MaskFeat and SimMIM.

    python tools/benchmarks/throughput.py [--out-dir docs/results] [--tag TAG] [--batch 8]
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

The ``variants`` group times, at ViT-B/224, the methods of ``learning_efficiency.py`` (LocalMIM
HOG / pixel, its two ablations, MAE), built by :func:`method_config`; that script calls
:func:`time_models` with the same configs to get their per-image step costs.

Outputs ``throughput[_TAG].json`` and ``.md`` (default folder ``docs/results``; ``--quick``:
``work_dirs/benchmarks``) headed by the command, git revision, machine and load average before
and after the run (``_provenance.py``), with a loud warning when the load exceeded the cores.
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time
from functools import partial
from typing import Callable, Dict, List, Optional

import torch

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
for path in (REPO, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

import localmim_mm  # noqa: E402,F401  (registers the LocalMIM modules)
import localmim_mm.models.backbones.localmim_swin as localmim_swin_module  # noqa: E402
import mmpretrain  # noqa: E402
from _provenance import Provenance, cpu_model, output_stem  # noqa: E402
from localmim_mm.models.backbones.localmim_vit import default_taps  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.optim import AmpOptimWrapper, OptimWrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmpretrain.models.backbones.vision_transformer import VisionTransformer  # noqa: E402
from mmpretrain.registry import MODELS, TRANSFORMS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

MMPRETRAIN_CONFIG_DIR = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs')

# mmpretrain's stock recipes (the files shipped in the mmpretrain package, ``mmpretrain::`` scope).
MMPRETRAIN_CONFIGS = {
    'mae': 'mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
    'maskfeat': 'maskfeat/maskfeat_vit-base-p16_8xb256-amp-coslr-300e_in1k.py',
    'simmim': 'simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py',
}
LOCAL_CONFIGS = {
    'localmim_vit': 'configs/_base_/models/localmim_vit-base-p16.py',
    'localmim_vit_pixel':
        'configs/localmim/localmim_vit-base-p16-pixel_8xb256-amp-coslr-1600e_in1k.py',
    'localmim_swin': 'configs/_base_/models/localmim_swin-base-w7.py',
    'lomar': 'configs/_base_/models/lomar_vit-base-p16.py',
}
DEFAULT_PREPROCESSOR = dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                            std=[58.395, 57.12, 57.375], to_rgb=True)
LAYOUT_FUNCTION = 'build_window_layout'


class Unavailable(Exception):
    """A model that cannot be built here (config or registered modules missing)."""


# --------------------------------------------------------------------------- model builders
def _load_config(key: str) -> Config:
    if key in MMPRETRAIN_CONFIGS:
        return Config.fromfile(osp.join(MMPRETRAIN_CONFIG_DIR, MMPRETRAIN_CONFIGS[key]))
    path = osp.join(REPO, LOCAL_CONFIGS[key])
    if not osp.exists(path):
        raise Unavailable(f'config {LOCAL_CONFIGS[key]} does not exist')
    return Config.fromfile(path)


def _model_cfg(cfg: Config) -> dict:
    model = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    if 'data_preprocessor' not in model:
        # The Runner takes a top-level data_preprocessor (set by mmpretrain's dataset bases).
        pre = cfg.get('data_preprocessor', DEFAULT_PREPROCESSOR)
        model['data_preprocessor'] = pre.to_dict() if hasattr(pre, 'to_dict') else dict(pre)
    return model


def _pipeline_step(cfg: Config, type_name: str) -> dict:
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == type_name:
            return dict(step)
    raise KeyError(f'{type_name} not found in the train pipeline of the config')


def _check_registered(model: dict) -> None:
    for part in ('type', ):
        if MODELS.get(model[part]) is None:
            raise Unavailable(f'model type {model[part]!r} is not registered')
    for key in ('backbone', 'neck', 'head', 'target_generator'):
        sub = model.get(key)
        if isinstance(sub, dict) and MODELS.get(sub['type']) is None:
            raise Unavailable(f'{key} type {sub["type"]!r} is not registered')


def localmim_vit(img_size: int):
    model = _model_cfg(_load_config('localmim_vit'))
    model['backbone']['img_size'] = img_size
    return model, None


def mae_vit(img_size: int):
    model = _model_cfg(_load_config('mae'))
    model['backbone']['img_size'] = img_size
    model['neck']['num_patches'] = (img_size // model['backbone']['patch_size']) ** 2
    return model, None


def maskfeat_vit(img_size: int):
    cfg = _load_config('maskfeat')
    if img_size != 224:
        raise Unavailable(f'mmpretrain HOGGenerator hard-codes a 14x14 token grid (224 px); '
                          f'got {img_size} px')
    return _model_cfg(cfg), _pipeline_step(cfg, 'BEiTMaskGenerator')


def simmim_swin(img_size: int):
    cfg = _load_config('simmim')
    model = _model_cfg(cfg)
    mask_gen = _pipeline_step(cfg, 'SimMIMMaskGenerator')
    model['backbone']['img_size'] = img_size
    if img_size != 192:  # the 224 px SimMIM Swin-B uses window 7 (its fine-tuning setting)
        model['backbone']['stage_cfgs'] = dict(block_cfgs=dict(window_size=img_size // 32))
        mask_gen['input_size'] = img_size
    return model, mask_gen


def localmim_swin(img_size: int):
    model = _model_cfg(_load_config('localmim_swin'))
    model['backbone']['img_size'] = img_size
    return model, None


def lomar_vit(img_size: int):
    model = _model_cfg(_load_config('lomar'))
    model['backbone']['img_size'] = img_size
    return model, None


# --------------------------------------------------------------------------- efficiency methods
# The methods of the learning-efficiency benchmark, as variants of the shipped configs: which
# taps are supervised ('all': the config's four, 'top': the last block only) at which scales.
EFFICIENCY_METHODS = {
    'LocalMIM-HOG': dict(family='localmim', target='hog', taps='all', scales=[4, 2, 1, 0.5]),
    'LocalMIM-pixel': dict(family='localmim', target='pixel', taps='all',
                           scales=[4, 2, 1, 0.5]),
    'MAE': dict(family='mae'),
    'LocalMIM-HOG top tap': dict(family='localmim', target='hog', taps='top', scales=[0.5]),
    'LocalMIM-HOG one scale': dict(family='localmim', target='hog', taps='all',
                                   scales=[1, 1, 1, 1]),
}


def arch_settings(arch) -> dict:
    """embed_dims / num_layers of a ViT ``arch`` (an mmpretrain arch name or a dict)."""
    if isinstance(arch, str):
        return VisionTransformer.arch_zoo[arch.lower()]
    return arch


def method_config(name: str, arch='b', img_size: int = 224, patch_size: int = 16,
                  decoder: Optional[dict] = None) -> dict:
    """The model config of an efficiency method on a ViT encoder ``arch``.

    Built from the shipped config of the method (``configs/_base_/models/localmim_vit-base-p16.py``
    for HOG, the ViT-B pixel recipe, mmpretrain's MAE recipe), so init_cfg and every setting not
    named here stay the config's. ``decoder``: ``dict(embed_dims=, num_heads=)`` replaces the
    width of every decoder (LocalMIM's four, MAE's one); their depth stays the config's.
    """
    if name not in EFFICIENCY_METHODS:
        raise KeyError(f'unknown method {name!r}; choose from {list(EFFICIENCY_METHODS)}')
    spec = EFFICIENCY_METHODS[name]
    dims = arch_settings(arch)['embed_dims']
    depth = arch_settings(arch)['num_layers']
    if spec['family'] == 'mae':
        model = _model_cfg(_load_config('mae'))
        model['backbone'].update(arch=arch, img_size=img_size, patch_size=patch_size)
        model['neck'].update(num_patches=(img_size // patch_size) ** 2, patch_size=patch_size,
                             embed_dim=dims)
        model['head']['patch_size'] = patch_size
        if decoder:
            model['neck'].update(decoder_embed_dim=decoder['embed_dims'],
                                 decoder_num_heads=decoder['num_heads'])
        return model
    model = _model_cfg(_load_config('localmim_vit' if spec['target'] == 'hog'
                                    else 'localmim_vit_pixel'))
    taps = default_taps(depth) if spec['taps'] == 'all' else [depth - 1]
    scales = list(spec['scales'])
    cells = [patch_size / s for s in scales]
    if any(c != int(c) for c in cells):
        raise ValueError(f'{name}: patch {patch_size} at scales {scales} gives cells {cells}; '
                         'use a patch size divisible by the inverse of every scale')
    cells = [int(c) for c in cells]
    model['backbone'].update(arch=arch, img_size=img_size, patch_size=patch_size,
                             out_indices=taps)
    model['neck'].update(in_channels=dims, num_layers=len(taps))
    generator = model['target_generator']
    generator['cell_sizes'] = cells
    channels = (3 * generator['nbins'] if generator['type'] == 'MultiScaleHOGGenerator'
                else [3 * c * c for c in cells])
    model['head'].update(in_channels=dims, scales=scales, target_channels=channels)
    if decoder:
        model['head'].update(embed_dims=decoder['embed_dims'], num_heads=decoder['num_heads'])
    return model


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


# --------------------------------------------------------------------------- timers
class SpanTimer:
    """Start / end marks inside a step: wall clock on CPU, CUDA events on GPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == 'cuda'
        self._spans = []

    def _mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._spans.append(event)
        else:
            self._spans.append(time.perf_counter())

    def reset(self) -> None:
        self._spans = []

    @property
    def calls(self) -> int:
        return len(self._spans) // 2

    def elapsed(self) -> float:
        """Seconds between the marks of each pair (call after the step has synchronised)."""
        pairs = zip(self._spans[0::2], self._spans[1::2])
        if self.cuda:
            return sum(a.elapsed_time(b) for a, b in pairs) / 1e3
        return sum(b - a for a, b in pairs)


class TargetTimer(SpanTimer):
    """Time spent in ``target_generator.forward`` during one step (forward hooks)."""

    def __init__(self, module: Optional[torch.nn.Module], device: torch.device):
        super().__init__(device)
        self.active = module is not None
        if self.active:
            module.register_forward_pre_hook(lambda *_: self._mark())
            module.register_forward_hook(lambda *_: self._mark())


class CallTimer(SpanTimer):
    """Time spent inside calls of ``module.<name>`` while installed (``with CallTimer(...)``).

    The module attribute is replaced by a timing wrapper and restored on exit, so every caller
    that looks the function up in that module at call time is timed. ``available`` is False (and
    nothing is patched) when the module has no such attribute.
    """

    def __init__(self, module, name: str, device: torch.device):
        super().__init__(device)
        self.module, self.name = module, name
        self.available = callable(getattr(module, name, None))
        self._original = None

    def __enter__(self) -> 'CallTimer':
        if self.available:
            self._original = getattr(self.module, self.name)
            setattr(self.module, self.name, self._timed)
        return self

    def __exit__(self, *exc) -> None:
        if self._original is not None:
            setattr(self.module, self.name, self._original)
            self._original = None

    def _timed(self, *args, **kwargs):
        self._mark()
        try:
            return self._original(*args, **kwargs)
        finally:
            self._mark()

    @property
    def status(self) -> str:
        if self.available:
            return 'measured'
        return f'not measured: {self.module.__name__} has no attribute {self.name}'


def builds_window_layouts(model: torch.nn.Module) -> bool:
    """Whether the model's backbone is defined in the LocalMIM Swin module."""
    backbone = getattr(model, 'backbone', None)
    return type(backbone).__module__ == localmim_swin_module.__name__


# --------------------------------------------------------------------------- one model
class TimedModel:
    """A built model, its optimiser wrapper, a fixed batch and its timings."""

    def __init__(self, name: str, model: torch.nn.Module, mask_gen: Optional[dict],
                 batch: int, img_size: int, device: torch.device, amp: bool):
        self.name, self.img_size, self.batch = name, img_size, batch
        self.model = model.to(device).train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
        self.wrapper = (AmpOptimWrapper(optimizer=optimizer, loss_scale='dynamic') if amp
                        else OptimWrapper(optimizer=optimizer))
        self.data = make_batch(batch, img_size, mask_gen, device)
        self.device = device
        self.step_times: List[float] = []
        self.target_times: List[float] = []
        self.layout_times: List[float] = []
        self.layout_calls: List[int] = []
        self.peak_mem_bytes = 0
        self._target_timer = TargetTimer(getattr(self.model, 'target_generator', None), device)
        # Set by run_group while the build_window_layout timer is installed.
        self.layout_timer: Optional[CallTimer] = None

    def step(self, record: bool) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self._target_timer.reset()
        if self.layout_timer is not None:
            self.layout_timer.reset()
        start = time.perf_counter()
        self.model.train_step(self.data, self.wrapper)
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if record:
            self.step_times.append(elapsed)
            if self._target_timer.active:
                self.target_times.append(self._target_timer.elapsed())
            if self.layout_timer is not None and self.layout_timer.available:
                self.layout_times.append(self.layout_timer.elapsed())
                self.layout_calls.append(self.layout_timer.calls)
            if self.device.type == 'cuda':
                self.peak_mem_bytes = max(self.peak_mem_bytes, torch.cuda.max_memory_allocated())

    def measure_cpu_memory(self) -> None:
        """Parameters + gradients + optimiser state + tensors saved for backward (one step)."""
        saved = {}

        def pack(t):
            if isinstance(t, torch.Tensor) and t.device.type == 'cpu':
                storage = t.untyped_storage()
                saved[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            self.model.train_step(self.data, self.wrapper)
        state = sum(_tensor_bytes(p) + _tensor_bytes(p.grad) for p in self.model.parameters())
        for per_param in self.wrapper.optimizer.state.values():
            state += sum(_tensor_bytes(v) for v in per_param.values())
        self.peak_mem_bytes = state + sum(saved.values())

    def profile(self, top: int) -> List[dict]:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if self.device.type == 'cuda':
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            self.step(record=False)
        key = 'self_cuda_time_total' if self.device.type == 'cuda' else 'self_cpu_time_total'
        events = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
        total = sum(getattr(e, key) for e in events) or 1.
        return [dict(op=e.key, self_ms=getattr(e, key) / 1e3, share=getattr(e, key) / total,
                     calls=e.count) for e in events[:top]]


def _tensor_bytes(t) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def make_batch(batch: int, img_size: int, mask_gen: Optional[dict], device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, img_size, img_size), dtype=torch.uint8,
                           generator=generator)
    samples = []
    transform = TRANSFORMS.build(mask_gen) if mask_gen else None
    for _ in range(batch):
        sample = DataSample()
        if transform is not None:
            sample.set_mask(torch.from_numpy(transform(dict())['mask']).to(device))
        samples.append(sample)
    return dict(inputs=images.to(device), data_samples=samples)  # as default_collate stacks


def build_model(model_cfg: dict) -> torch.nn.Module:
    """Build and initialise a model the way the Runner does (its own ``init_weights``)."""
    _check_registered(model_cfg)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def build_runner(name: str, builder: Callable, img_size: int, batch: int,
                 device: torch.device, amp: bool):
    """A TimedModel, or the reason why the model is not available."""
    try:
        model_cfg, mask_gen = builder(img_size)
        model = build_model(model_cfg)
    except Unavailable as err:
        return None, str(err)
    except Exception as err:
        if name not in OPTIONAL:
            raise
        return None, f'build failed: {type(err).__name__}: {err}'
    return TimedModel(name, model, mask_gen, batch, img_size, device, amp), None


# --------------------------------------------------------------------------- timing
def measure(runners: List[TimedModel], steps: int, warmup: int, device: torch.device,
            log_prefix: str = '', cpu_memory: bool = True) -> None:
    """Warm-up and timed repetitions, interleaved round-robin (order rotated each repetition);
    on CPU, with ``cpu_memory``, the first warm-up step records the saved tensors."""
    measure_cpu = device.type == 'cpu' and cpu_memory
    for rep in range(warmup + steps):
        shift = rep % max(len(runners), 1)
        for runner in runners[shift:] + runners[:shift]:
            if measure_cpu and rep == 0 and warmup:
                runner.measure_cpu_memory()  # the first warm-up step, hooks on
            else:
                runner.step(record=rep >= warmup)
        print(f'{log_prefix}repetition {rep + 1}/{warmup + steps}', flush=True)
    if measure_cpu and not warmup:
        for runner in runners:
            runner.measure_cpu_memory()


def time_models(models: Dict[str, torch.nn.Module], img_size: int, batch: int, steps: int,
                warmup: int, device: torch.device, amp: bool) -> Dict[str, dict]:
    """Time built models (:func:`build_model`) as one interleaved group, as :func:`run_group`
    does; the summary row of each (step times only: on CPU the costly saved-tensor count of the
    memory column is skipped, ``peak_mem_mb`` is None). The models are moved to ``device``."""
    runners = [TimedModel(name, model, None, batch, img_size, device, amp)
               for name, model in models.items()]
    measure(runners, steps, warmup, device, log_prefix='[step cost] ', cpu_memory=False)
    rows = {r.name: dict(name=r.name, img_size=img_size, batch=batch, **summarise(r))
            for r in runners}
    if device.type == 'cpu':
        for row in rows.values():
            row['peak_mem_mb'] = None
    del runners
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return rows


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


def summarise(runner: "TimedModel") -> dict:
    times = sorted(runner.step_times)
    median = statistics.median(times)
    q1, q3 = _quartiles(times)
    out = dict(steps=len(times), step_s_median=median, step_s_q1=q1, step_s_q3=q3,
               step_s_min=times[0], step_s_max=times[-1], images_per_s=runner.batch / median,
               image_s=median / runner.batch, peak_mem_mb=runner.peak_mem_bytes / 2**20,
               params_m=sum(p.numel() for p in runner.model.parameters()) / 1e6)
    if runner.target_times:
        shares = [t / s for t, s in zip(runner.target_times, runner.step_times)]
        out['target_s_median'] = statistics.median(runner.target_times)
        out['target_share_median'] = statistics.median(shares)
        out['target_generator'] = type(runner.model.target_generator).__name__
    if runner.layout_timer is not None:
        out['layout_share_status'] = runner.layout_timer.status
        out['layout_share'] = None
        if runner.layout_times:
            shares = [t / s for t, s in zip(runner.layout_times, runner.step_times)]
            out['layout_share'] = statistics.median(shares)
            out['layout_s_median'] = statistics.median(runner.layout_times)
            out['layout_calls_per_step'] = statistics.median(runner.layout_calls)
    return out


def _quartiles(values: List[float]):
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method='inclusive')
    return q[0], q[2]


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
    provenance = Provenance.start('throughput.py', argv, torch.get_num_threads(),
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
    write_outputs(result, provenance.markdown(), args.out_dir, args.tag)
    return result


def write_outputs(result: dict, header: str, out_dir: str, tag: Optional[str] = None) -> None:
    os.makedirs(out_dir, exist_ok=True)
    stem = output_stem(out_dir, 'throughput', tag)
    with open(stem + '.json', 'w') as f:
        json.dump(result, f, indent=2)
    markdown = to_markdown(result, header)
    with open(stem + '.md', 'w') as f:
        f.write(markdown)
    print(markdown)
    print(f'wrote {stem}.json and {stem}.md')


if __name__ == '__main__':
    main()
