"""GPU memory a pre-training recipe needs per GPU: model states from the parameter counts,
activations from the tensors autograd saves, measured on the CPU at two small batches.

Model states (bytes per parameter, AdamW, fp32 master weights as torch AMP keeps them):

* DDP (mmengine's default ``Runner``): weights 4 + gradients 4 + AdamW ``exp_avg`` and
  ``exp_avg_sq`` 8, plus DDP's gradient buckets 4 (``gradient_as_bucket_view=False``, the
  default): 20 bytes per parameter on every GPU.
* FSDP full sharding over N GPUs: the 16 bytes per parameter divided by N, plus the units being
  gathered: the root unit (everything outside the wrapped blocks) for the whole step, and two
  block units at a time (the one computing and the one prefetched), each with its weights and,
  in the backward pass, its unsharded gradients (8 bytes per parameter).

Activations: a forward of the recipe's model (its loss, under autocast to bfloat16 when the
recipe uses AMP: 2-byte activations as with fp16 on GPUs) records every tensor autograd saves for
the backward pass, counted once per storage, parameters excluded. Measured at batch 1 and 2, the
difference is the per-image cost and the rest the batch-independent part (e.g. the 2-byte weight
copies autocast saves); the estimate is ``fixed + batch * per_image``. The CPU computes attention
with a fused kernel that, like FlashAttention on GPUs, saves no attention matrix.

Not included: the CUDA context and the caching allocator's slack (plan ~1-3 GB per GPU), the
dataloader's pinned memory, and transient buffers of the backward pass.
"""
import functools
from typing import Dict, List, Tuple

import torch
from mmengine.config import Config
from torch import nn

from ..models.utils import model_input_size
from .loading import model_from_config

GiB = 1024 ** 3

__all__ = ['saved_activation_bytes', 'recipe_memory', 'model_state_bytes', 'fsdp_units']


class _SavedTensorCounter:
    """Sums the bytes of the storages autograd saves, each storage once, parameters excluded."""

    def __init__(self, exclude: set):
        self.exclude = exclude
        self.storages: Dict[int, int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self.exclude and ptr != 0:
            self.storages[ptr] = storage.nbytes()
        return tensor

    @staticmethod
    def unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    @property
    def total(self) -> int:
        return sum(self.storages.values())


def saved_activation_bytes(model: nn.Module, forward, amp: bool) -> int:
    """Bytes of the tensors saved for backward while ``forward()`` runs (its result must be a
    tensor or a dict of tensors, all kept alive until counted)."""
    exclude = {t.untyped_storage().data_ptr()
               for t in list(model.parameters()) + list(model.buffers())}
    counter = _SavedTensorCounter(exclude)
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack), \
            torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
        out = forward()
    del out
    return counter.total


def fsdp_units(model: nn.Module) -> Tuple[int, List[int]]:
    """(parameters of the root unit, parameters of each block unit) under
    ``vit_block_wrap_policy``; nested units (decoder blocks) count in their innermost unit."""
    from localmim_mm.runtime.launch.fsdp_wrap import fsdp_unit_types
    unit_types = fsdp_unit_types()
    units, claimed = [], set()
    for module in reversed(list(model.modules())):  # innermost units first
        if isinstance(module, unit_types):
            params = [p for p in module.parameters() if id(p) not in claimed]
            claimed.update(id(p) for p in params)
            units.append(sum(p.numel() for p in params))
    root = sum(p.numel() for p in model.parameters() if id(p) not in claimed)
    return root, units


def model_state_bytes(num_params: int, strategy: str, gpus: int, root_params: int = 0,
                      largest_unit: int = 0) -> Dict[str, float]:
    """Per-GPU bytes of weights, gradients, AdamW state and the strategy's extra buffers."""
    if strategy == 'DDP':
        return dict(weights=4 * num_params, gradients=4 * num_params, adamw=8 * num_params,
                    strategy_buffers=4 * num_params)
    gathered = 8 * (root_params + 2 * largest_unit)  # weights + unsharded gradients
    return dict(weights=4 * num_params / gpus, gradients=4 * num_params / gpus,
                adamw=8 * num_params / gpus, strategy_buffers=gathered)


def _float32_targets(generator: nn.Module) -> None:
    """Run the target generator outside autocast: targets are float32 (and carry no gradient,
    so they add nothing to the count). Its histogram ``scatter_`` fails on the half-precision
    gradients that autocast's conv2d returns."""
    forward = generator.forward

    def float32_forward(img, *args, **kwargs):
        with torch.autocast(img.device.type, enabled=False):
            return forward(img.float(), *args, **kwargs)

    generator.forward = float32_forward


def _loss_forward(model: nn.Module, batch: int, size: Tuple[int, int]):
    from mmpretrain.structures import DataSample
    inputs = torch.randn(batch, 3, *size)
    samples = [DataSample() for _ in range(batch)]
    if getattr(model, 'target_generator', None) is not None:
        _float32_targets(model.target_generator)
    torch.manual_seed(0)
    return lambda: model.loss(inputs, samples)


@functools.lru_cache(maxsize=None)
def _measure(config: str) -> dict:
    """Parameter counts and the activation model of a config (cached: one build per config)."""
    cfg = Config.fromfile(config)
    amp = cfg.optim_wrapper.get('type') == 'AmpOptimWrapper'
    model = model_from_config(cfg).train()
    root, units = fsdp_units(model)
    size = model_input_size(model)
    one, two = (saved_activation_bytes(model, _loss_forward(model, b, size), amp) for b in (1, 2))
    return dict(amp=amp, input_size=list(size),
                trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
                fsdp_root_params=root, largest_fsdp_unit_params=max(units, default=0),
                activation_bytes_per_image=two - one, activation_bytes_fixed=2 * one - two)


def recipe_memory(config: str, gpus: int = None, strategy: str = None) -> dict:
    """Per-GPU memory of a pre-training config at its batch per GPU (see the module doc).
    ``strategy`` ('DDP' / 'FSDP') overrides the config's (for a comparison)."""
    cfg = Config.fromfile(config)
    gpus = gpus or cfg.get('gpus') or 8
    batch = cfg.train_dataloader.batch_size
    if strategy is None:
        strategy_type = str((cfg.get('strategy') or {}).get('type', ''))
        strategy = 'FSDP' if strategy_type.endswith('FSDPStrategy') else 'DDP'
    measured = _measure(config)
    states = model_state_bytes(measured['trainable_params'], strategy, gpus,
                               measured['fsdp_root_params'], measured['largest_fsdp_unit_params'])
    activations = measured['activation_bytes_fixed'] + batch * measured[
        'activation_bytes_per_image']
    total = sum(states.values()) + activations
    return dict(
        config=config, strategy=strategy, gpus=gpus, batch_per_gpu=batch, **measured,
        per_gpu_gib={**{k: v / GiB for k, v in states.items()}, 'activations': activations / GiB,
                     'total': total / GiB})
