"""What a LocalMIM model reconstructs: targets and predictions per supervised layer as images."""
from typing import List, NamedTuple

import numpy as np
import torch
from torch import nn

from ..models.target_generators import MultiScaleHOGGenerator, MultiScalePixelGenerator
from ..models.utils import scale_mask
from .hog_glyphs import cell_orientation_histograms, render_hog_glyphs

__all__ = ['LayerReconstruction', 'reconstruct', 'hog_panels', 'pixel_panels', 'patchify',
           'unpatchify', 'check_reconstruction_model']

MASKED_TINT = np.array([0.05, 0.1, 0.45])  # background of masked cells in the HOG panels
VISIBLE_DIM = 0.35  # predictions on visible cells are not trained: drawn dimmed


class LayerReconstruction(NamedTuple):
    name: str  # tap name, e.g. 'block1'
    cell: int  # target cell side in pixels
    target: torch.Tensor  # (cells, C) row-major
    pred: torch.Tensor  # (cells, C) row-major
    cell_mask: torch.Tensor  # (h_k, w_k) weight of each cell in the loss (> 0: masked)


def check_reconstruction_model(model: nn.Module) -> None:
    """Refuse, naming what is missing, a model the viewer cannot draw (e.g. LoMaR)."""
    head, generator = getattr(model, 'head', None), getattr(model, 'target_generator', None)
    missing = [part for part, present in (
        ('neck', getattr(model, 'neck', None) is not None),
        ('per-layer decoders (LocalMIMHead)', hasattr(head, 'decoders')),
        ('target generator', generator is not None)) if not present]
    if missing:
        raise TypeError(
            f'the reconstruction viewer draws the per-layer multi-scale targets of a LocalMIM '
            f'pre-training model; {type(model).__name__} lacks: {", ".join(missing)}'
            + ('. LoMaR predicts the pixels of a few masked windows with one linear head: '
               'look at its encoder with tools/analysis_tools/layer_nmi.py or attention_maps.py'
               if type(model).__name__ == 'LoMaR' else ''))
    if not isinstance(generator, (MultiScaleHOGGenerator, MultiScalePixelGenerator)):
        raise TypeError(f'the reconstruction viewer draws MultiScaleHOGGenerator or '
                        f'MultiScalePixelGenerator targets, not {type(generator).__name__}')


@torch.no_grad()
def reconstruct(model: nn.Module, x: torch.Tensor, seed: int):
    """Masked forward of one image with a mask drawn from ``seed``.

    Returns ``(layers, patch_mask)``: one :class:`LayerReconstruction` per supervised layer, and
    the (h, w) patch mask (1 = masked).
    """
    check_reconstruction_model(model)
    torch.manual_seed(seed)
    feats, mask, _ = model.backbone(x, mask=True)
    preds = model.head(model.neck(feats), mask)
    targets = model.target_generator(x)
    layers = []
    for name, cell, pred, target, tap_mask, scale in zip(
            model.backbone.tap_names, model.target_generator.cell_sizes, preds, targets,
            model.head.tap_masks(mask), model.head.scales):
        layers.append(LayerReconstruction(
            name, cell, target[0].cpu(), pred[0].flatten(1).t().cpu(),
            scale_mask(tap_mask, scale)[0].cpu()))
    return layers, mask[0].cpu()


def _cell_background(cell_mask: torch.Tensor, cell_px: int) -> np.ndarray:
    masked = (cell_mask.numpy() > 0).astype(np.float32)
    masked = masked.repeat(cell_px, 0).repeat(cell_px, 1)
    return masked[..., None] * MASKED_TINT


def hog_panels(layer: LayerReconstruction, nbins: int, cell_px: int) -> List[np.ndarray]:
    """Target and prediction glyph images (H, W, 3) in [0, 1], on one brightness scale (the
    target's largest bin). Masked cells have a blue background; predictions on visible cells
    (not trained) are dimmed."""
    grid = tuple(layer.cell_mask.shape)
    target = cell_orientation_histograms(layer.target, nbins, grid)
    pred = cell_orientation_histograms(layer.pred, nbins, grid)
    vmax = target.max()
    background = _cell_background(layer.cell_mask, cell_px)
    visible = np.where(background.any(-1, keepdims=True), 1., VISIBLE_DIM)
    target_img = render_hog_glyphs(target, cell_px, vmax)[..., None]
    pred_img = render_hog_glyphs(pred, cell_px, vmax)[..., None] * visible
    return [np.clip(background + img, 0, 1) for img in (target_img, pred_img)]


def patchify(img: torch.Tensor, k: int) -> torch.Tensor:
    """(3, H, W) -> ((H/k)*(W/k), k*k*3) cells, row-major, each ordered (row, column, colour)."""
    c, h, w = img.shape
    return img.reshape(c, h // k, k, w // k, k).permute(1, 3, 2, 4, 0).reshape(-1, k * k * c)


def unpatchify(cells: torch.Tensor, k: int, size) -> torch.Tensor:
    """Inverse of :func:`patchify` for an (H, W) image."""
    h, w = size
    return cells.reshape(h // k, w // k, k, k, 3).permute(4, 0, 2, 1, 3).reshape(3, h, w)


def _denormalise_cells(cells: torch.Tensor, raw: torch.Tensor, generator) -> torch.Tensor:
    """Undo the generator's per-cell ``norm_pix`` with the true cell's mean / variance."""
    if not generator.norm_pix:
        return cells
    mean = raw.mean(dim=-1, keepdim=True)
    std = (raw.var(dim=-1, keepdim=True) + generator.eps).sqrt()
    return cells.float() * std + mean


def pixel_panels(layer: LayerReconstruction, image: torch.Tensor, patch_mask: torch.Tensor,
                 generator, denormalise) -> List[np.ndarray]:
    """Target and prediction pixels pasted into the visible image, as (H, W, 3) uint8.

    ``image``: the (3, H, W) normalised model input; ``denormalise`` maps such a tensor to uint8
    RGB. A ``norm_pix`` prediction is de-normalised with the true mean / variance of its cell
    (as MAE's visualisations do), so only the cell's pattern comes from the model.
    """
    size = image.shape[-2:]
    raw = patchify(image.float().cpu(), layer.cell)
    patch = size[0] // patch_mask.shape[0]
    pixel_mask = patch_mask.repeat_interleave(patch, 0).repeat_interleave(patch, 1).bool()
    panels = []
    for cells in (layer.target, layer.pred):
        filled = unpatchify(_denormalise_cells(cells, raw, generator), layer.cell, size)
        panels.append(denormalise(torch.where(pixel_mask, filled, image.float().cpu())))
    return panels
