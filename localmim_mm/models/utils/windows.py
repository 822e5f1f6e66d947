"""LoMaR's local windows: offset sampling, pixel crops and the per-window random mask."""
from typing import Optional, Tuple

import torch

from .random import draw_global_batch


def num_masked_patches(window_size: int, mask_ratio: float, owner: str = 'LoMaR') -> int:
    """Patches masked in each W x W window: ``floor(W*W*ratio)`` (7x7 at 0.8: 39 of 49)."""
    if not 0 < mask_ratio < 1:
        raise ValueError(f'{owner}: mask_ratio={mask_ratio!r} must lie in (0, 1), e.g. 0.8')
    length = window_size * window_size
    # The epsilon keeps products such as 0.75 * 16 from flooring to 11.
    masked = int(length * mask_ratio + 1e-6)
    if not 0 < masked < length:
        raise ValueError(
            f'{owner}: mask_ratio={mask_ratio!r} masks {masked} of the {length} patches of a '
            f'{window_size}x{window_size} window; at least one patch must be masked and one '
            'visible, so choose a ratio or window size giving 1..W*W-1 masked patches')
    return masked


def sample_window_offsets(batch: int, num_windows: int, window_size: int,
                          grid: Tuple[int, int], per_image: bool = True, device=None,
                          generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Top-left corners of the windows in patch units, (B, K, 2) as (row, col).

    Each axis is drawn uniformly from the ``grid - W + 1`` valid positions (8 for a 7-patch
    window on the 14x14 grid); windows may overlap. ``per_image=False`` draws one set of K
    offsets and shares it across the batch (and the ranks, with a ``generator``). With a
    ``generator`` the offsets of the whole global batch are drawn (``draw_global_batch``).
    """
    def sample(n, g, d):
        rows = torch.randint(0, grid[0] - window_size + 1, (n, num_windows), generator=g,
                             device=d)
        cols = torch.randint(0, grid[1] - window_size + 1, (n, num_windows), generator=g,
                             device=d)
        return torch.stack([rows, cols], dim=-1)

    if per_image:
        return draw_global_batch(sample, batch, generator, device)
    shared = sample(1, generator, generator.device if generator else device).to(device)
    return shared.expand(batch, -1, -1).contiguous()


def crop_windows(images: torch.Tensor, offsets: torch.Tensor, window_size: int,
                 patch_size: int) -> torch.Tensor:
    """Pixel crops (B, K, C, W*p, W*p); window k of image b is cut from image b at offsets[b, k]."""
    batch, num_windows, _ = offsets.shape
    span = torch.arange(window_size * patch_size, device=images.device)
    top = offsets[..., 0] * patch_size
    left = offsets[..., 1] * patch_size
    rows = (top[..., None] + span)[..., :, None]            # (B, K, Wp, 1)
    cols = (left[..., None] + span)[..., None, :]           # (B, K, 1, Wp)
    image_ids = torch.arange(batch, device=images.device).view(batch, 1, 1, 1)
    crops = images.permute(0, 2, 3, 1)[image_ids, rows, cols]  # (B, K, Wp, Wp, C)
    return crops.permute(0, 1, 4, 2, 3)


def random_window_mask(batch: int, num_windows: int, length: int, num_masked: int, device=None,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(B * K, L) float mask, 1 = masked, exactly ``num_masked`` ones per window at random
    places; with a ``generator`` drawn for the whole global batch (``draw_global_batch``)."""
    noise = draw_global_batch(
        lambda n, g, d: torch.rand(n, num_windows, length, generator=g, device=d), batch,
        generator, device)
    ranks = noise.flatten(0, 1).argsort(dim=1).argsort(dim=1)
    return (ranks < num_masked).float()
