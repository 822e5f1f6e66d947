"""Random draws that give each sample the same value whatever the number of processes."""
from typing import Callable, Optional

import torch
from mmengine.dist import get_dist_info

__all__ = ['draw_global_batch']

RowSampler = Callable[[int, Optional[torch.Generator], torch.device], torch.Tensor]


def draw_global_batch(sample_rows: RowSampler, batch: int,
                      generator: Optional[torch.Generator], device) -> torch.Tensor:
    """This process's ``batch`` rows of random values, drawn by ``sample_rows(n, generator,
    device)`` (e.g. ``lambda n, g, d: torch.rand(n, 49, generator=g, device=d)``).

    Without ``generator`` the rows come from ``device``'s global RNG. With one (seeded alike on
    every rank by ``RNGStateHook``, on the model's device) the rows of the whole global batch are
    drawn and rank ``r`` keeps rows ``r::world_size``: mmengine's ``DefaultSampler`` deals the
    global batch out in that order, so each sample draws the same values whatever the number of
    processes, and nothing is copied between host and device.
    """
    if generator is None:
        return sample_rows(batch, None, device)
    rank, world_size = get_dist_info()
    rows = sample_rows(batch * world_size, generator, generator.device)
    return rows[rank::world_size].to(device)
