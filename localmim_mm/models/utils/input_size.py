"""The input size a model's backbone was built for."""
from typing import Tuple

from torch import nn

__all__ = ['model_input_size']


def model_input_size(model: nn.Module) -> Tuple[int, int]:
    """``(H, W)`` the backbone of ``model`` (or ``model`` itself, a backbone) was built for: its
    patch grid times its patch size (ViT, Swin), else its ``img_size``."""
    backbone = getattr(model, 'backbone', model)
    if hasattr(backbone, 'patch_resolution'):
        grid = backbone.patch_resolution
        kernel = backbone.patch_embed.projection.kernel_size
        return grid[0] * kernel[0], grid[1] * kernel[1]
    size = getattr(backbone, 'img_size', None)
    if size is None:
        raise TypeError(f'{type(backbone).__name__} says neither its patch grid '
                        '(patch_resolution) nor its input size (img_size)')
    return (size, size) if isinstance(size, int) else tuple(size)
