"""The HOG target of the LocalMIM release, pooled at several cell sizes."""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmpretrain.registry import MODELS
from ..utils import check_cell_sizes

__all__ = ['MultiScaleHOGGenerator', 'sobel_gradients']


# A gradient component below this share of the magnitude of its own terms is float32 rounding
# of an exact zero (16 ulps; a real one on 8-bit images is at least 1/255 of its terms).
ROUNDING = 2.0**-20


def sobel_gradients(img: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The release's Sobel gradients (reflect padding), per colour channel: ``(gx, gy)``.

    ``gx`` is the cross-correlation with ``[[1, 0, -1], [2, 0, -2], [1, 0, -1]]`` and ``gy``
    with its transpose, evaluated so that a component which is zero in exact arithmetic is
    exactly zero: it is computed as smoothed neighbour differences (exact where neighbours are
    equal: flat regions, every border row / column under reflect padding), and a residue within
    float32 rounding of its terms is set to zero. The orientation bins then equal the release's
    formula in exact arithmetic; the release's float32 convolution leaves rounding residues of
    either sign there, which put such pixels in a bin by chance (docs/design.md).
    """
    padded = F.pad(img, (1, 1, 1, 1), mode='reflect')
    magnitude = padded.abs()
    gx = _sobel(padded, -1, torch.sub), _sobel(magnitude, -1, torch.add)
    gy = _sobel(padded, -2, torch.sub), _sobel(magnitude, -2, torch.add)
    return tuple(torch.where(g.abs() <= ROUNDING * terms, 0., g) for g, terms in (gx, gy))


def _sobel(padded: torch.Tensor, across: int, combine) -> torch.Tensor:
    """``combine(before, after)`` of the neighbours across dim ``across`` (-1: columns, -2:
    rows), smoothed by [1, 2, 1] along the other spatial dim."""
    along = -3 - across
    d = combine(_shifted(padded, across, 0), _shifted(padded, across, 2))
    return _shifted(d, along, 0) + 2 * _shifted(d, along, 1) + _shifted(d, along, 2)


def _shifted(x: torch.Tensor, dim: int, start: int) -> torch.Tensor:
    return x.narrow(dim, start, x.shape[dim] - 2)


@MODELS.register_module()
class MultiScaleHOGGenerator(BaseModule):
    """Histograms of oriented gradients at several cell sizes (spec section 4).

    Unlike mmpretrain's ``HOGGenerator`` (MaskFeat: Gaussian window, sum pooling, a fixed 14x14
    token grouping) this is the LocalMIM release's variant: per colour channel Sobel gradients with
    reflect padding, unsigned orientation ``floor(atan2(gx, gy) / pi * nbins) mod nbins`` with
    hard binning, ``k x k`` average pooling and an L2 normalisation of each cell's histogram per
    colour channel. Computed in float32 whatever the autocast state.

    Without ``hog_bias`` the pixels' binned magnitudes are the same for every scale: they are
    summed once into cells of the greatest common cell size, then pooled per cell size. With it,
    each scale has its own frozen gradient bias (the release gives each scale its own
    ``Conv2d(1, 2, 3)`` with a bias shared by the three colours), hence its own histogram.

    Args:
        nbins (int): Orientation bins per colour channel. 9 for ViT-B, 18 for ViT-L / Swin.
        cell_sizes (Sequence[int]): Cell side in pixels for each output scale, e.g.
            ``[4, 8, 16, 32]`` for the four ViT taps.
        hog_bias (bool): Add the release's frozen gradient bias: a ``(len(cell_sizes), 2)``
            buffer (row k: the (gx, gy) bias of scale k), each entry drawn once from U(-1/3, 1/3)
            (PyTorch's default bias init of a 3x3 conv with one input channel) and stored in the
            checkpoint (ViT-L / Swin recipes).

    Returns (forward):
        list[Tensor]: one float32 tensor per cell size, shape ``(B, (H/k)*(W/k), 3*nbins)``,
        cells in row-major order, channels ordered ``(colour, bin)``.
    """

    def __init__(self, nbins: int = 9, cell_sizes: Sequence[int] = (4, 8, 16, 32),
                 hog_bias: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(nbins, int) or nbins < 1:
            raise ValueError(f'MultiScaleHOGGenerator: nbins={nbins!r} must be an integer >= 1 '
                             '(the paper uses 9 for ViT-B and 18 for ViT-L / Swin)')
        self.nbins = nbins
        self.cell_sizes = check_cell_sizes(cell_sizes, 'MultiScaleHOGGenerator')
        if hog_bias:
            bias = torch.empty(len(self.cell_sizes), 2).uniform_(-1 / 3, 1 / 3)
            self.register_buffer('hog_bias', bias)
        else:
            self.hog_bias = None

    @property
    def out_channels(self) -> int:
        return 3 * self.nbins

    def cell_histograms(self, gx: torch.Tensor, gy: torch.Tensor, cell: int,
                        bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Mean over each ``cell x cell`` cell of the pixels' gradient magnitudes, each in its
        orientation bin: (B, 3 * nbins, H / cell, W / cell).

        One flat ``index_add_`` of the B*3*H*W magnitudes into the B*3*cells*nbins slots (no dense
        per-pixel histogram of nbins planes, deterministic on CUDA too).
        """
        if bias is not None:
            gx, gy = gx + bias[0], gy + bias[1]
        b, c, h, w = gx.shape
        rows, cols = h // cell, w // cell
        magnitude = torch.sqrt(gx * gx + gy * gy)
        bins = torch.floor(torch.atan2(gx, gy) / math.pi * self.nbins).long() % self.nbins
        slot = self._cell_slots(b * c, h, w, cell, gx.device) + bins.flatten()
        hist = gx.new_zeros(b * c * rows * cols * self.nbins)
        hist.index_add_(0, slot, magnitude.flatten())
        hist = hist.view(b, c, rows, cols, self.nbins).permute(0, 1, 4, 2, 3)
        return hist.reshape(b, c * self.nbins, rows, cols) / (cell * cell)

    def _cell_slots(self, planes: int, h: int, w: int, cell: int,
                    device: torch.device) -> torch.Tensor:
        """Flat index of bin 0 of each pixel's cell, for ``planes`` stacked (H, W) planes."""
        rows, cols = h // cell, w // cell
        cell_of = ((torch.arange(h, device=device) // cell)[:, None] * cols
                   + torch.arange(w, device=device) // cell)
        plane = torch.arange(planes, device=device)[:, None, None] * (rows * cols)
        return ((plane + cell_of) * self.nbins).flatten()

    @torch.no_grad()
    def forward(self, img: torch.Tensor) -> List[torch.Tensor]:
        self._check_input(img)
        with torch.autocast(device_type=img.device.type, enabled=False):
            gx, gy = sobel_gradients(img.float())
            if self.hog_bias is None:
                pooled = self._pool_shared(gx, gy)
            else:
                pooled = [self.cell_histograms(gx, gy, k, bias)
                          for k, bias in zip(self.cell_sizes, self.hog_bias)]
            return [self._normalize_cells(cells) for cells in pooled]

    def _pool_shared(self, gx: torch.Tensor, gy: torch.Tensor) -> List[torch.Tensor]:
        """Histograms of the cells of the greatest common cell size, average-pooled to every
        cell size, each from the next finer size that divides it (an average of averages is the
        direct average)."""
        base = math.gcd(*self.cell_sizes)
        pooled = {base: self.cell_histograms(gx, gy, base)}
        finer = base
        for k in sorted(set(self.cell_sizes) - {base}):
            source = finer if k % finer == 0 else base
            pooled[k] = F.avg_pool2d(pooled[source], k // source)
            finer = k
        return [pooled[k] for k in self.cell_sizes]

    def _normalize_cells(self, cells: torch.Tensor) -> torch.Tensor:
        """(B, 3 * nbins, h, w) -> (B, h * w, 3 * nbins), each colour's histogram L2-normalised."""
        b, _, h, w = cells.shape
        cells = F.normalize(cells.view(b, 3, self.nbins, h, w), p=2, dim=2)
        return cells.flatten(1, 2).flatten(2).transpose(1, 2).contiguous()

    def _check_input(self, img: torch.Tensor) -> None:
        _, c, h, w = img.shape
        if c != 3:
            raise ValueError(f'MultiScaleHOGGenerator expects RGB input, got {c} channels')
        for k in self.cell_sizes:
            if h % k or w % k:
                raise ValueError(f'MultiScaleHOGGenerator: image size {h}x{w} is not divisible by '
                                 f'the cell size {k}; use an input size divisible by '
                                 f'{max(self.cell_sizes)}')
