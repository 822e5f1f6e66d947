#!/usr/bin/env python
"""Attention of chosen query points over the image, at chosen encoder layers.

    python tools/analysis_tools/attention_maps.py CONFIG CHECKPOINT --points X,Y [X,Y ...] \
        [--layers 0 3 7] [--head H] [--images FILE_OR_FOLDER ...] --out-dir DIR

``X,Y`` are pixel coordinates of the original image (x to the right, y down). The query is the
patch holding the point (after resizing to the model's input size); its attention row over the
patch tokens (cls dropped, row renormalised; mean over heads unless ``--head``) is upsampled and
overlaid on the image, the colour scale stretched from the map's minimum to its maximum (the
panel title gives the maximum and the uniform value 1/N). One PNG per image and point,
``<image>_x<X>_y<Y>.png``, a panel per layer.
Works on any mmpretrain ViT checkpoint (LocalMIM, LoMaR, MAE, MaskFeat, ...); the image is
unmasked (LoMaR: one sequence over the whole image, with its learnt relative position bias).
"""
import argparse
import os.path as osp

from localmim_mm.analysis import (ImageInput, attention_blocks, build_model, check_layers,
                                  encoder_attentions, find_images, model_input_size,
                                  overlay_heatmap, save_png)
from localmim_mm.analysis.cli import add_image_args, add_model_args, parse_point, use_agg_backend

MIN_PANEL_PX = 256


def parse_args():
    parser = argparse.ArgumentParser(
        description='Attention maps of query points at chosen layers of a ViT checkpoint')
    add_model_args(parser)
    add_image_args(parser, max_images=4)
    parser.add_argument('--points', nargs='+', type=parse_point, required=True,
                        help='query points X,Y in pixels of the original image')
    parser.add_argument('--layers', nargs='+', type=int,
                        help='encoder blocks, 0-indexed (default: every block)')
    parser.add_argument('--head', type=int,
                        help='show one attention head (default: mean over heads)')
    return parser.parse_args()


def query_patch(image: ImageInput, point, patch: int, grid):
    """Row and column of the patch holding ``point`` (original-image pixels)."""
    x, y = image.to_pixel(*point)
    return min(int(y // patch), grid[0] - 1), min(int(x // patch), grid[1] - 1)


def point_figure(image, point, cell, maps, patch, grid, head):
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    factor = max(1, MIN_PANEL_PX // image.rgb.shape[0])
    rgb = image.rgb.repeat(factor, 0).repeat(factor, 1)
    columns = min(len(maps), 4)
    rows = -(-len(maps) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), squeeze=False)
    query = cell[0] * grid[1] + cell[1]
    for ax, (layer, attn) in zip(axes.flat, maps.items()):
        attn = attn[0].mean(0) if head is None else attn[0, head]
        heat = attn[query].reshape(grid).numpy()
        ax.imshow(overlay_heatmap(rgb, heat))
        side = patch * factor
        ax.add_patch(Rectangle((cell[1] * side - .5, cell[0] * side - .5), side, side,
                               fill=False, edgecolor='white', linewidth=1.5))
        ax.set_title(f'block {layer} (max {heat.max():.3f}, uniform {1 / heat.size:.3f})',
                     fontsize=9)
    for ax in axes.flat:
        ax.axis('off')
    heads = 'mean over heads' if head is None else f'head {head}'
    fig.suptitle(f'{image.name}: query ({point[0]:g}, {point[1]:g}), patch {cell}, {heads}',
                 fontsize=10)
    fig.tight_layout()
    return fig


def main():
    args = parse_args()
    use_agg_backend()
    model, _ = build_model(args.config, args.checkpoint, device=args.device,
                           cfg_options=args.cfg_options)
    blocks = attention_blocks(model)
    layers = list(range(len(blocks))) if args.layers is None else args.layers
    check_layers(layers, len(blocks))
    num_heads = blocks[0].attn.num_heads
    if args.head is not None and not 0 <= args.head < num_heads:
        raise ValueError(f'--head {args.head} is outside the {num_heads} heads '
                         f'(0..{num_heads - 1})')
    size = model_input_size(model)
    grid = tuple(model.backbone.patch_resolution)
    patch = size[0] // grid[0]
    written = 0
    for path in find_images(args.images, args.max_images):
        image = ImageInput(path, size, model.data_preprocessor)
        cells = [query_patch(image, p, patch, grid) for p in args.points]  # validates first
        maps = encoder_attentions(model, image.tensor(args.device), layers)
        for point, cell in zip(args.points, cells):
            fig = point_figure(image, point, cell, maps, patch, grid, args.head)
            name = f'{image.name}_x{point[0]:g}_y{point[1]:g}.png'
            save_png(fig, osp.join(args.out_dir, name))
            written += 1
    print(f'wrote {written} PNGs to {args.out_dir}')


if __name__ == '__main__':
    main()
