#!/usr/bin/env python
"""Show what a LocalMIM checkpoint reconstructs at each supervised layer.

    python tools/analysis_tools/visualize_reconstruction.py CONFIG CHECKPOINT \
        [--images FILE_OR_FOLDER ...] --out-dir DIR [--seed 0] [--device cpu]

For every image, one PNG per supervised layer (``<image>_<tap>.png``): the input, the masked
input (the mask drawn with ``--seed``, the same for every layer), then the layer's target and the
decoder's prediction at that layer's scale: HOG cells drawn as orientation glyphs, or pixels
pasted into the masked patches of the visible image. Needs a full pre-training checkpoint
(backbone, neck and decoder heads), e.g. ``work_dirs/.../epoch_20.pth``. LoMaR checkpoints
are refused (no per-layer decoders to draw); ``layer_nmi.py`` and ``attention_maps.py`` read them.
"""
import argparse
import os.path as osp

import numpy as np

from localmim_mm.analysis import (ImageInput, build_model, find_images, hog_panels,
                                  model_input_size, pixel_panels, reconstruct, save_png)
from localmim_mm.analysis.reconstruction import check_reconstruction_model
from localmim_mm.analysis.cli import add_image_args, add_model_args, use_agg_backend
from localmim_mm.models.target_generators import MultiScaleHOGGenerator

MIN_PANEL_PX = 256


def parse_args():
    parser = argparse.ArgumentParser(
        description='Per-layer targets and predictions of a LocalMIM pre-training checkpoint')
    add_model_args(parser)
    add_image_args(parser, max_images=8)
    parser.add_argument('--seed', type=int, default=0, help='seed of the random mask')
    return parser.parse_args()


def upscale(rgb: np.ndarray, size: int) -> np.ndarray:
    factor = max(1, size // rgb.shape[0])
    return rgb.repeat(factor, 0).repeat(factor, 1)


def masked_input(rgb: np.ndarray, patch_mask) -> np.ndarray:
    patch = rgb.shape[0] // patch_mask.shape[0]
    pixels = patch_mask.numpy().repeat(patch, 0).repeat(patch, 1).astype(bool)
    out = rgb.copy()
    out[pixels] = 127
    return out


def layer_figure(image: ImageInput, x, layer, patch_mask, generator):
    import matplotlib.pyplot as plt
    grid_w = layer.cell_mask.shape[1]
    cell_px = max(8, -(-MIN_PANEL_PX // grid_w))
    size = cell_px * grid_w
    if isinstance(generator, MultiScaleHOGGenerator):
        target, pred = hog_panels(layer, generator.nbins, cell_px)
        kind = 'HOG'
    else:
        target, pred = (upscale(p, size) for p in
                        pixel_panels(layer, x[0], patch_mask, generator, image.denormalise))
        kind = 'pixels (de-normalised)'
    panels = [(upscale(image.rgb, size), 'input'),
              (upscale(masked_input(image.rgb, patch_mask), size),
               f'masked input ({patch_mask.mean().item():.0%})'),
              (target, f'target {kind}'), (pred, f'prediction {kind}')]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    for ax, (panel, title) in zip(axes, panels):
        ax.imshow(panel, interpolation='nearest')
        ax.set_title(title, fontsize=9)
        ax.axis('off')
    fig.suptitle(f'{image.name}: {layer.name}, {layer.cell}-px cells '
                 f'({layer.cell_mask.shape[0]}x{grid_w})', fontsize=10)
    return fig


def main():
    args = parse_args()
    use_agg_backend()
    model, _ = build_model(args.config, args.checkpoint, required=('backbone', 'neck', 'head'),
                           device=args.device, cfg_options=args.cfg_options,
                           check=check_reconstruction_model)
    size = model_input_size(model)
    written = []
    for path in find_images(args.images, args.max_images):
        image = ImageInput(path, size, model.data_preprocessor)
        x = image.tensor(args.device)
        layers, patch_mask = reconstruct(model, x, args.seed)
        for layer in layers:
            fig = layer_figure(image, x.cpu(), layer, patch_mask, model.target_generator)
            written.append(save_png(fig, osp.join(args.out_dir, f'{image.name}_{layer.name}.png')))
    print(f'wrote {len(written)} PNGs to {args.out_dir}')


if __name__ == '__main__':
    main()
