"""Run evaluation code in the middle of training without changing what training does next."""
import contextlib
from typing import Iterator

import torch
from torch import nn

from ...runtime.model_wrappers import unwrap_model
from ...runtime.randomness import preserved_rng_states

__all__ = ['guard_training_state']


@contextlib.contextmanager
def guard_training_state(model: nn.Module) -> Iterator[nn.Module]:
    """Yield the unwrapped ``model`` in eval mode under ``torch.no_grad``; restore on exit:

    * the global torch (CPU and the current CUDA device), numpy and python random states;
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
    try:
        with preserved_rng_states(), torch.no_grad():
            inner.eval()
            yield inner
    finally:
        for module, generator in generators:
            module.mask_generator = generator
        for (_, generator), state in zip(generators, generator_states):
            generator.set_state(state)
        for module, training in modes:
            module.training = training
