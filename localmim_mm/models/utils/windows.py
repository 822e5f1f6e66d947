"""LoMaR's local windows: offset sampling, pixel crops and the per-window random mask."""
from typing import Tuple

import torch


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
                          grid: Tuple[int, int], per_image: bool = True,
                          device=None) -> torch.Tensor:
    """Top-left corners of the windows in patch units, (B, K, 2) as (row, col).

    Each axis is drawn uniformly from the ``grid - W + 1`` valid positions (8 for a 7-patch
    window on the 14x14 grid); windows may overlap. ``per_image=False`` draws one set of K
    offsets and shares it across the batch.
    """
    draws = batch if per_image else 1
    rows = torch.randint(0, grid[0] - window_size + 1, (draws, num_windows), device=device)
    cols = torch.randint(0, grid[1] - window_size + 1, (draws, num_windows), device=device)
    return torch.stack([rows, cols], dim=-1).expand(batch, -1, -1).contiguous()


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


def random_window_mask(num_windows: int, length: int, num_masked: int,
                       device=None) -> torch.Tensor:
    """(N, L) float mask, 1 = masked, exactly ``num_masked`` ones per window at random places."""
    noise = torch.rand(num_windows, length, device=device)
    ranks = noise.argsort(dim=1).argsort(dim=1)
    return (ranks < num_masked).float()
