#!/usr/bin/env python
"""Show what a LocalMIM checkpoint reconstructs at each supervised layer.

    python tools/analysis_tools/visualize_reconstruction.py CONFIG CHECKPOINT \
        [--images FILE_OR_FOLDER ...] --out-dir DIR [--seed 0] [--device cpu]

For every image, one PNG per supervised layer (``<image>_<tap>.png``): the input, the masked
input (the mask drawn with ``--seed``, the same for every layer), then the layer's target and the
decoder's prediction at that layer's scale: HOG cells drawn as orientation glyphs (a legend says
what the backgrounds and the glyph brightness mean), or pixels pasted into the masked patches of
the visible image. Needs a full pre-training checkpoint (backbone, neck and decoder heads),
e.g. ``work_dirs/.../epoch_20.pth``. LoMaR checkpoints are refused (no per-layer decoders to
draw); ``layer_nmi.py`` and ``attention_maps.py`` read them.
"""
import argparse
import os.path as osp

from localmim_mm.analysis import (ImageInput, build_model, find_images, model_input_size,
                                  reconstruct, save_png)
from localmim_mm.analysis.reconstruction import check_reconstruction_model
from localmim_mm.analysis.cli import add_image_args, add_model_args, use_agg_backend
from localmim_mm.analysis.hog_glyphs import hog_legend
from localmim_mm.analysis.images import add_legend
from localmim_mm.analysis.reconstruction import MASKED_TINT, VISIBLE_DIM
from localmim_mm.analysis.reconstruction_figure import layer_panels
from localmim_mm.models.target_generators import MultiScaleHOGGenerator

def parse_args():
    parser = argparse.ArgumentParser(
        description='Per-layer targets and predictions of a LocalMIM pre-training checkpoint')
    add_model_args(parser)
    add_image_args(parser, max_images=8)
    parser.add_argument('--seed', type=int, default=0, help='seed of the random mask')
    return parser.parse_args()


def layer_figure(image: ImageInput, x, layer, patch_mask, generator):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    for ax, (panel, title) in zip(axes, layer_panels(image, x, layer, patch_mask, generator)):
        ax.imshow(panel, interpolation='nearest')
        ax.set_title(title, fontsize=9)
        ax.axis('off')
    fig.suptitle(f'{image.name}: {layer.name}, {layer.cell}-px cells '
                 f'({layer.cell_mask.shape[0]}x{layer.cell_mask.shape[1]})', fontsize=10)
    if isinstance(generator, MultiScaleHOGGenerator):
        add_legend(fig, hog_legend(MASKED_TINT, VISIBLE_DIM))
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
