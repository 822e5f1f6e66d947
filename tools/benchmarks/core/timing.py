"""Timed training steps of built models, as the mmengine Runner runs them.

One step is ``model.train_step`` (data preprocessor, forward, loss, backward, AdamW step) through
an ``OptimWrapper`` (float32) or an ``AmpOptimWrapper`` (float16 autocast + dynamic loss scale).
The models of a group share batch and image size and are timed round-robin in one process: each
repetition runs one step of every model, in an order rotated by one each repetition; warm-up
repetitions are not recorded. Timers inside the step (:class:`TargetTimer`, :class:`CallTimer`)
measure the share of a module's forward or of a function's calls.
"""
import statistics
import time
from typing import Dict, List, Optional

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmpretrain.registry import TRANSFORMS
from mmpretrain.structures import DataSample


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
        # A CallTimer installed by the caller while the model runs (throughput's layout share).
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
    """Time built models (:func:`.models.build_model`) as one interleaved group, as
    ``throughput``'s groups are timed; the summary row of each (step times only: on CPU the
    costly saved-tensor count of the memory column is skipped, ``peak_mem_mb`` is None). The
    models are moved to ``device``."""
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


def summarise(runner: TimedModel) -> dict:
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

