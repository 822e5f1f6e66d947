"""The HOG target of the LocalMIM release, pooled at several cell sizes."""
import math
from typing import List, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmpretrain.registry import MODELS
from ..utils import check_cell_sizes

__all__ = ['MultiScaleHOGGenerator']


@MODELS.register_module()
class MultiScaleHOGGenerator(BaseModule):
    """Histograms of oriented gradients at several cell sizes (spec section 4).

    Unlike mmpretrain's ``HOGGenerator`` (MaskFeat: Gaussian window, sum pooling, a fixed 14x14
    token grouping) this is the LocalMIM release's variant: per colour channel Sobel gradients with
    reflect padding, unsigned orientation with hard binning, ``k x k`` average pooling and an L2
    normalisation of each cell's histogram per colour channel. The per-pixel histogram is built
    once per batch and pooled once per cell size.

    Args:
        nbins (int): Orientation bins per colour channel. 9 for ViT-B, 18 for ViT-L / Swin.
        cell_sizes (Sequence[int]): Cell side in pixels for each output scale, e.g.
            ``[4, 8, 16, 32]`` for the four ViT taps.
        hog_bias (bool): Add the release's frozen gradient-conv bias, drawn once from
            U(-1/3, 1/3) and stored in the checkpoint as a buffer (ViT-L / Swin recipes).

    Returns (forward):
        list[Tensor]: one tensor per cell size, shape ``(B, (H/k)*(W/k), 3*nbins)``, cells in
        row-major order, channels ordered ``(colour, bin)``.
    """

    def __init__(self, nbins: int = 9, cell_sizes: Sequence[int] = (4, 8, 16, 32),
                 hog_bias: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(nbins, int) or nbins < 1:
            raise ValueError(f'MultiScaleHOGGenerator: nbins={nbins!r} must be an integer >= 1 '
                             '(the paper uses 9 for ViT-B and 18 for ViT-L / Swin)')
        self.nbins = nbins
        self.cell_sizes = check_cell_sizes(cell_sizes, 'MultiScaleHOGGenerator')
        gx = torch.tensor([[1., 0., -1.], [2., 0., -2.], [1., 0., -1.]])
        # Output channel 2c is d/dx of colour c, 2c+1 is d/dy (groups=3 keeps colours apart).
        kernel = torch.stack([gx, gx.t()])[:, None].repeat(3, 1, 1, 1)
        self.register_buffer('sobel', kernel, persistent=False)
        if hog_bias:
            bias = torch.empty(6).uniform_(-1 / 3, 1 / 3)
            self.register_buffer('hog_bias', bias)
        else:
            self.hog_bias = None

    @property
    def out_channels(self) -> int:
        return 3 * self.nbins

    def pixel_histogram(self, img: torch.Tensor) -> torch.Tensor:
        """Per-pixel magnitude placed in its orientation bin: (B, 3 * nbins, H, W)."""
        b, c, h, w = img.shape
        if c != 3:
            raise ValueError(f'MultiScaleHOGGenerator expects RGB input, got {c} channels')
        padded = F.pad(img.float(), (1, 1, 1, 1), mode='reflect')
        grad = F.conv2d(padded, self.sobel, self.hog_bias, groups=3).view(b, 3, 2, h, w)
        gx, gy = grad[:, :, 0], grad[:, :, 1]
        magnitude = torch.sqrt(gx * gx + gy * gy)
        position = torch.atan2(gx, gy) * (self.nbins / math.pi)
        # float32 puts an exact bin edge (e.g. gy = 0, as reflect padding gives on the top and
        # bottom rows, is the edge 9 of 18 bins) a hair below it for one sign of gx only; snap
        # such values onto the edge so the formula floor(angle / pi * nbins) holds exactly.
        edge = position.round()
        position = torch.where((position - edge).abs() < 1e-4, edge, position)
        bins = torch.floor(position).long().remainder(self.nbins)
        hist = img.new_zeros(b, 3, self.nbins, h, w, dtype=torch.float32)
        hist.scatter_(2, bins.unsqueeze(2), magnitude.unsqueeze(2))
        return hist.view(b, 3 * self.nbins, h, w)

    @torch.no_grad()
    def forward(self, img: torch.Tensor) -> List[torch.Tensor]:
        b, _, h, w = img.shape
        for k in self.cell_sizes:
            if h % k or w % k:
                raise ValueError(f'MultiScaleHOGGenerator: image size {h}x{w} is not divisible by '
                                 f'the cell size {k}; use an input size divisible by '
                                 f'{max(self.cell_sizes)}')
        hist = self.pixel_histogram(img)
        # Pool from the next finer cell size where it divides (an average of averages is the
        # direct average), so the four scales cost little more than the finest one.
        pooled, finer = {1: hist}, 1
        for k in sorted(set(self.cell_sizes)):
            source = finer if k % finer == 0 else 1
            pooled[k] = F.avg_pool2d(pooled[source], k // source)
            finer = k
        targets = []
        for k in self.cell_sizes:
            cells = pooled[k].view(b, 3, self.nbins, h // k, w // k)
            cells = F.normalize(cells, p=2, dim=2)
            targets.append(cells.flatten(1, 2).flatten(2).transpose(1, 2).contiguous())
        return targets
