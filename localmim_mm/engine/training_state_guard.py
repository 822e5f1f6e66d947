"""Run evaluation code in the middle of training without changing what training does next."""
import contextlib
import random
from typing import Iterator

import numpy as np
import torch
from mmengine.model import is_model_wrapper
from torch import nn

__all__ = ['guard_training_state', 'unwrap_model']


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DDP / FSDP wrapper (its sub-modules are called directly, so no wrapper
    forward, no gradient bucket and no collective is involved)."""
    return model.module if is_model_wrapper(model) else model


@contextlib.contextmanager
def guard_training_state(model: nn.Module) -> Iterator[nn.Module]:
    """Yield the unwrapped ``model`` in eval mode under ``torch.no_grad``; restore on exit:

    * the global torch (CPU and every initialised CUDA device), numpy and python random states;
    * the state of every module's ``mask_generator`` (``LocalMIMViT``'s private mask stream, set
      by ``RNGStateHook``), and the generator objects themselves;
    * the train / eval mode of every sub-module (not just the top one).

    Gradients are neither computed nor touched. Together this keeps the training trajectory, and
    so bit-exact ``--resume``, independent of whatever runs inside.
    """
    inner = unwrap_model(model)
    modes = [(m, m.training) for m in inner.modules()]
    generators = [(m, m.mask_generator) for m in inner.modules()
                  if getattr(m, 'mask_generator', None) is not None]
    generator_states = [g.get_state() for _, g in generators]
    np_state, py_state = np.random.get_state(), random.getstate()
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    devices = list(range(torch.cuda.device_count())) if cuda else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            inner.eval()
            yield inner
    finally:
        for module, generator in generators:
            module.mask_generator = generator
        for (_, generator), state in zip(generators, generator_states):
            generator.set_state(state)
        np.random.set_state(np_state)
        random.setstate(py_state)
        for module, training in modes:
            module.training = training
