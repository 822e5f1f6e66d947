"""The one snapshot of a process's random streams, and the seeds every rank agrees on.

Used by ``RNGStateHook`` (streams saved in checkpoints), ``DeterministicPipelineHook`` (per-sample
augmentation seeds), the LocalMIM training aids' ``guard_training_state`` and the benchmarks.
"""
import contextlib
import random
from typing import Iterator

import numpy as np
import torch
from mmengine.dist import broadcast_object_list

__all__ = ['capture_rng_states', 'restore_rng_states', 'preserved_rng_states',
           'seeded_host_rngs', 'rank0_seed']


def capture_rng_states() -> dict:
    """This process's global random states (torch CPU, the current CUDA device when CUDA is
    initialised, numpy, python), as types that load under ``weights_only=True``."""
    states = _host_states()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state()
    return states


def restore_rng_states(states: dict) -> None:
    """Undo everything drawn since ``capture_rng_states`` returned ``states``."""
    _restore_host_states(states)
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states['cuda'])


@contextlib.contextmanager
def preserved_rng_states() -> Iterator[None]:
    """Run the body, then put every global random stream back where it was."""
    states = capture_rng_states()
    try:
        yield
    finally:
        restore_rng_states(states)


@contextlib.contextmanager
def seeded_host_rngs(seed: int) -> Iterator[None]:
    """Run the body with the host streams (torch CPU, numpy, python) seeded from ``seed``, then
    restore them; CUDA streams are left untouched."""
    states = _host_states()
    torch.default_generator.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        _restore_host_states(states)


def rank0_seed(runner) -> int:
    """Rank 0's runner seed on every rank (``randomness.diff_rank_seed`` offsets the others)."""
    seed = [runner.seed]
    broadcast_object_list(seed)
    return seed[0]


def _host_states() -> dict:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return dict(torch=torch.get_rng_state(), python=random.getstate(),
                numpy=(name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss))


def _restore_host_states(states: dict) -> None:
    torch.set_rng_state(states['torch'])
    random.setstate(states['python'])
    name, keys, pos, has_gauss, gauss = states['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
