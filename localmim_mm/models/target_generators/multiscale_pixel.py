"""Per-cell pixel targets at several cell sizes (MAE ``norm_pix`` style)."""
from typing import List, Sequence

import torch
from mmengine.model import BaseModule

from mmpretrain.registry import MODELS
from ..utils import check_cell_sizes

__all__ = ['MultiScalePixelGenerator']


@MODELS.register_module()
class MultiScalePixelGenerator(BaseModule):
    """The pixels of each ``k x k`` cell as a target vector, for several cell sizes.

    Args:
        cell_sizes (Sequence[int]): Cell side in pixels for each output scale.
        norm_pix (bool): Normalise each cell by its own mean and variance (MAE's ``norm_pix``).
        eps (float): Added to the variance before the square root.

    Returns (forward):
        list[Tensor]: one tensor per cell size, shape ``(B, (H/k)*(W/k), 3*k*k)``, cells in
        row-major order, each cell's vector ordered ``(row, column, colour)`` as MAE's patchify.
    """

    def __init__(self, cell_sizes: Sequence[int] = (4, 8, 16, 32), norm_pix: bool = True,
                 eps: float = 1e-6, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.cell_sizes = check_cell_sizes(cell_sizes, 'MultiScalePixelGenerator')
        self.norm_pix = norm_pix
        self.eps = eps

    def out_channels_at(self, index: int) -> int:
        return 3 * self.cell_sizes[index] ** 2

    @torch.no_grad()
    def forward(self, img: torch.Tensor) -> List[torch.Tensor]:
        """float32 targets whatever the autocast state."""
        with torch.autocast(device_type=img.device.type, enabled=False):
            return [self.cells(img.float(), k) for k in self.cell_sizes]

    def cells(self, img: torch.Tensor, k: int) -> torch.Tensor:
        b, c, h, w = img.shape
        if h % k or w % k:
            raise ValueError(f'MultiScalePixelGenerator: image size {h}x{w} is not divisible '
                             f'by the cell size {k}; a cell cannot be larger than the image '
                             'and must tile it exactly')
        cells = img.reshape(b, c, h // k, k, w // k, k)
        cells = cells.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // k) * (w // k), k * k * c)
        if self.norm_pix:
            mean = cells.mean(dim=-1, keepdim=True)
            var = cells.var(dim=-1, keepdim=True)
            cells = (cells - mean) / (var + self.eps).sqrt()
        return cells
