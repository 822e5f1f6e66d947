"""The reconstruction viewer's panels as matplotlib figures: one row of panels per supervised
layer (input, masked input, target, prediction), shared by
``tools/analysis_tools/visualize_reconstruction.py`` and ``LiveReconstructionHook``."""
from typing import List, Sequence, Tuple

import numpy as np

from ..models.target_generators import MultiScaleHOGGenerator
from .hog_glyphs import hog_legend
from .images import ImageInput, add_legend
from .reconstruction import (MASKED_TINT, VISIBLE_DIM, LayerReconstruction, hog_panels,
                             pixel_panels)

__all__ = ['upscale', 'masked_input', 'layer_panels', 'reconstruction_figure']

MIN_PANEL_PX = 256


def upscale(rgb: np.ndarray, size: int) -> np.ndarray:
    factor = max(1, size // rgb.shape[0])
    return rgb.repeat(factor, 0).repeat(factor, 1)


def masked_input(rgb: np.ndarray, patch_mask) -> np.ndarray:
    """The image with its masked patches grey."""
    patch = rgb.shape[0] // patch_mask.shape[0]
    pixels = patch_mask.numpy().repeat(patch, 0).repeat(patch, 1).astype(bool)
    out = rgb.copy()
    out[pixels] = 127
    return out


def layer_panels(image: ImageInput, x, layer: LayerReconstruction, patch_mask, generator,
                 min_panel_px: int = MIN_PANEL_PX) -> List[Tuple[np.ndarray, str]]:
    """``(panel, title)`` for the input, the masked input, the layer's target and prediction
    (HOG glyphs or pixels), all drawn at about ``min_panel_px`` pixels."""
    grid_w = layer.cell_mask.shape[1]
    cell_px = max(8, -(-min_panel_px // grid_w))
    size = cell_px * grid_w
    if isinstance(generator, MultiScaleHOGGenerator):
        target, pred = hog_panels(layer, generator.nbins, cell_px)
        kind = 'HOG'
    else:
        target, pred = (upscale(p, size) for p in
                        pixel_panels(layer, x[0], patch_mask, generator, image.denormalise))
        kind = 'pixels (de-normalised)'
    return [(upscale(image.rgb, size), 'input'),
            (upscale(masked_input(image.rgb, patch_mask), size),
             f'masked input ({patch_mask.mean().item():.0%})'),
            (target, f'target {kind}'), (pred, f'prediction {kind}')]


def reconstruction_figure(image: ImageInput, x, layers: Sequence[LayerReconstruction],
                          patch_mask, generator, title: str = '', min_panel_px: int = 160):
    """One row per supervised layer, with a legend under HOG panels. A plain
    ``matplotlib.figure.Figure`` (no pyplot state): safe inside a training process."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 2.6 * len(layers)))
    axes = fig.subplots(len(layers), 4, squeeze=False)
    for row, layer in zip(axes, layers):
        panels = layer_panels(image, x, layer, patch_mask, generator, min_panel_px)
        for ax, (panel, name) in zip(row, panels):
            ax.imshow(panel, interpolation='nearest')
            ax.set_title(name, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f'{layer.name}\n{layer.cell}-px cells', fontsize=9)
    fig.suptitle(title or image.name, fontsize=10)
    if isinstance(generator, MultiScaleHOGGenerator):
        add_legend(fig, hog_legend(MASKED_TINT, VISIBLE_DIM))
    return fig
