"""CPU stand-ins for mmengine's ``AmpOptimWrapper``, so AMP training steps run in the test suite.

On a GPU, ``AmpOptimWrapper.optim_context`` runs the data preprocessor and the forward under
``torch.autocast('cuda', float16)`` and the backward outside it. ``CPUAutocastOptimWrapper`` does
the same with CPU autocast (bfloat16, or float16 where CPU kernels exist) and records, at the
optimizer step, which parameters received a finite gradient.
"""
from contextlib import contextmanager
from typing import Dict

import torch
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import OPTIM_WRAPPERS

__all__ = ['CPUAutocastOptimWrapper', 'recipe_optim_wrapper', 'random_batch']


@OPTIM_WRAPPERS.register_module(force=True)
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under CPU autocast; keeps the gradients it stepped."""

    def __init__(self, dtype: torch.dtype = torch.bfloat16, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dtype = dtype
        self.grads: Dict[str, torch.Tensor] = {}
        self._names = {}

    def track(self, model: torch.nn.Module) -> None:
        self._names = {id(p): n for n, p in model.named_parameters()}

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast('cpu', dtype=self.dtype):
            yield

    def step(self, **kwargs) -> None:
        for group in self.optimizer.param_groups:
            for p in group['params']:
                if p.grad is not None:
                    self.grads[self._names.get(id(p), str(id(p)))] = p.grad.detach().clone()
        super().step(**kwargs)


def recipe_optim_wrapper(model: torch.nn.Module, optim_cfg: dict,
                         dtype: torch.dtype) -> CPUAutocastOptimWrapper:
    """The recipe's optimizer and parameter-wise settings in a CPU autocast wrapper (the AMP-only
    ``loss_scale`` / ``dtype`` / ``type`` of the recipe's wrapper are replaced)."""
    cfg = {k: v for k, v in dict(optim_cfg).items() if k not in ('type', 'loss_scale', 'dtype')}
    wrapper = build_optim_wrapper(model, dict(type='CPUAutocastOptimWrapper', dtype=dtype, **cfg))
    wrapper.track(model)
    return wrapper


def random_batch(batch: int, size, seed: int = 0) -> dict:
    """What the pre-training dataloader (``default_collate``) gives mmpretrain's
    ``SelfSupDataPreprocessor``: a (B, 3, H, W) uint8 batch and its data samples."""
    from mmpretrain.structures import DataSample
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, h, w), generator=g, dtype=torch.uint8)
    return dict(inputs=images, data_samples=[DataSample() for _ in range(batch)])
