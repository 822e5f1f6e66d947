"""Drawing HOG histograms as orientation glyphs (one star of lines per cell).

Orientation convention (spec section 4): ``theta = atan2(gx, gy)`` with the release's Sobel
kernels, ``gx = I(x-1) - I(x+1)`` along columns and ``gy = I(y-1) - I(y+1)`` along rows
(y pointing down). So ``theta`` is measured from the image's downward axis towards its
rightward axis, and the gradient direction is ``(sin theta, cos theta)`` in (x right, y down)
coordinates; bin ``b`` covers ``theta`` in ``[b, b+1) * pi / nbins`` (unsigned, modulo pi).
A glyph draws each bin as a line through the cell centre along the **edge**, i.e. perpendicular to
the gradient: direction ``(cos theta, -sin theta)``, at the bin's centre angle, with brightness
proportional to the bin's value. A vertical edge (gradient along x, ``theta = pi/2``) gives a
vertical line, a horizontal edge (``theta = 0``) a horizontal one.
"""
import math
from typing import List, Optional, Tuple

import numpy as np
import torch

__all__ = ['cell_orientation_histograms', 'glyph_templates', 'render_hog_glyphs', 'hog_legend']


def cell_orientation_histograms(cells, nbins: int, grid: Tuple[int, int]) -> np.ndarray:
    """One orientation histogram per cell from a HOG target or prediction.

    Args:
        cells: ``(h*w, 3*nbins)`` rows of cells in row-major order, channels ``(colour, bin)``
            (the ``MultiScaleHOGGenerator`` layout; a prediction map flattened the same way).
        nbins (int): orientation bins per colour channel.
        grid (tuple): ``(h, w)`` cells.

    Returns:
        ndarray: ``(h, w, nbins)``, the mean over colour channels, negatives (possible in a
        prediction) clipped to 0.
    """
    cells = cells.detach().cpu().float().numpy() if isinstance(cells, torch.Tensor) else cells
    h, w = grid
    if cells.shape != (h * w, 3 * nbins):
        raise ValueError(f'expected ({h * w}, {3 * nbins}) HOG cells for a {h}x{w} grid and '
                         f'nbins={nbins}, got {tuple(cells.shape)}')
    return np.clip(cells.reshape(h, w, 3, nbins).mean(axis=2), 0, None)


def glyph_templates(nbins: int, size: int) -> np.ndarray:
    """``(nbins, size, size)`` anti-aliased line images, one per bin, through the cell centre
    along the edge direction of the bin's centre angle (see the module docstring)."""
    centre = (np.arange(size) + 0.5) - size / 2
    v, u = np.meshgrid(centre, centre, indexing='ij')  # v: rows (down), u: columns (right)
    half_length, half_width = 0.45 * size, 0.5 + size / 48
    templates = np.empty((nbins, size, size), dtype=np.float32)
    for b in range(nbins):
        theta = (b + 0.5) * math.pi / nbins
        edge_x, edge_y = math.cos(theta), -math.sin(theta)
        across = np.abs(u * edge_y - v * edge_x)
        along = np.abs(u * edge_x + v * edge_y)
        line = np.clip(1 + half_width - across, 0, 1) * (along <= half_length)
        templates[b] = line
    return templates


def render_hog_glyphs(hist: np.ndarray, cell_px: int, vmax: Optional[float] = None) -> np.ndarray:
    """Draw ``(h, w, nbins)`` histograms as a ``(h*cell_px, w*cell_px)`` image in [0, 1].

    ``vmax`` is the histogram value drawn at full brightness (default: the largest value), so
    that a target and a prediction can share one scale.
    """
    h, w, nbins = hist.shape
    if cell_px < 3:
        raise ValueError(f'cell_px={cell_px} is too small to draw a glyph; use at least 3 pixels')
    vmax = float(hist.max()) if vmax is None else float(vmax)
    scaled = hist / vmax if vmax > 0 else np.zeros_like(hist)
    canvas = np.einsum('hwb,bij->hiwj', scaled, glyph_templates(nbins, cell_px))
    return np.clip(canvas.reshape(h * cell_px, w * cell_px), 0, 1)


def hog_legend(masked_tint, visible_dim: float) -> List[Tuple[tuple, str]]:
    """``(RGB colour, meaning)`` of what the HOG glyph panels show, for a figure legend.

    Args:
        masked_tint: background of the cells that count in the loss.
        visible_dim (float): brightness factor of predictions on visible cells.
    """
    return [
        (tuple(float(c) for c in masked_tint), 'cell in the loss (masked; for coarse cells, '
         'partly masked)'),
        ((0., 0., 0.), 'visible cell (not in the loss)'),
        ((1., 1., 1.), 'glyph: one line per orientation bin, along the edge; brightness = bin '
         "value / the target's largest bin"),
        ((visible_dim,) * 3, 'dimmed glyph: prediction on a visible cell (not trained)'),
    ]
