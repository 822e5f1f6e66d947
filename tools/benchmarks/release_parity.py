"""Measure the effect of this project's deliberate differences from the authors' release.

    python -m tools.benchmarks.release_parity [--images DIR] [--sizes 64 224] [--out-dir DIR]

1. HOG orientation bins (``docs/design.md``): on real 8-bit images, the share of pixels with a
   gradient (and the share of gradient magnitude) whose bin differs from the release's formula
   ``floor(atan2(gx, gy) / pi * nbins) mod nbins`` evaluated in exact arithmetic (integer Sobel of
   the 8-bit pixels; normalising divides gx and gy by the same std), for the release's float32
   convolution and for this project's ``sobel_gradients``; and how far the two targets differ.
2. Swin LayerNorm eps: the release's Swin uses eps 1e-6 in every LayerNorm, mmpretrain's (and
   mmdet's) Swin 1e-5, which this project keeps so that pre-training and fine-tuning encoders are
   the same module. Relative difference of the four tap features and per-layer losses of a
   freshly initialised LocalMIM Swin-B on real 224-px images, same weights and masks.

Writes ``release_parity.json`` and ``.md`` (with the provenance header) to ``--out-dir``.
"""
import argparse
import glob
import math
import os
import os.path as osp

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from PIL import Image

from localmim_mm.models.target_generators.multiscale_hog import sobel_gradients

from .core import REPO
from .core.provenance import Provenance
from .core.report import write_outputs

MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
SOBEL_X = torch.tensor([[1., 0., -1.], [2., 0., -2.], [1., 0., -1.]])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', default=osp.join(REPO, 'data/sample_cifar/val'),
                        help='folder of images (searched recursively for .jpg / .png)')
    parser.add_argument('--max-images', type=int, default=100)
    parser.add_argument('--sizes', type=int, nargs='+', default=[64, 224],
                        help='square sizes the images are resized to (bicubic, as the '
                        'pipeline\'s RandomResizedCrop)')
    parser.add_argument('--out-dir', default=osp.join(REPO, 'docs/results'))
    return parser.parse_args(argv)


def load_uint8(folder: str, size: int, limit: int) -> torch.Tensor:
    files = sorted(glob.glob(osp.join(folder, '**', '*.jpg'), recursive=True) +
                   glob.glob(osp.join(folder, '**', '*.png'), recursive=True))[:limit]
    if not files:
        raise SystemExit(f'no .jpg / .png image under {folder}; pass --images DIR')
    imgs = [np.asarray(Image.open(f).convert('RGB').resize((size, size), Image.BICUBIC))
            for f in files]
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


def exact_gradients(uint8: torch.Tensor):
    """Integer Sobel (reflect padding) of the 8-bit pixels: exact."""
    p = F.pad(uint8.double(), (1, 1, 1, 1), mode='reflect').long()
    h, w = uint8.shape[-2:]

    def tap(i, j):
        return p[..., i:i + h, j:j + w]

    gx = tap(0, 0) - tap(0, 2) + 2 * (tap(1, 0) - tap(1, 2)) + tap(2, 0) - tap(2, 2)
    gy = tap(0, 0) - tap(2, 0) + 2 * (tap(0, 1) - tap(2, 1)) + tap(0, 2) - tap(2, 2)
    return gx.double(), gy.double()


def release_conv_gradients(x: torch.Tensor):
    """The release's ``HOGLayer`` convolution, one colour at a time (float32)."""
    weight = torch.stack([SOBEL_X, SOBEL_X.t()])[:, None]
    g = torch.stack([F.conv2d(F.pad(x[:, c:c + 1], (1, 1, 1, 1), mode='reflect'), weight)
                     for c in range(3)], dim=1)
    return g[:, :, 0], g[:, :, 1]


def bins(gx, gy, nbins):
    return torch.floor(torch.atan2(gx, gy) / math.pi * nbins).long() % nbins


def hog_bin_study(uint8: torch.Tensor) -> dict:
    x = (uint8.float() - MEAN) / STD
    exact_gx, exact_gy = exact_gradients(uint8)
    magnitude = torch.sqrt(exact_gx**2 + exact_gy**2)
    moving = magnitude > 0
    rules = {'release float32 convolution': release_conv_gradients(x),
             'this project (sobel_gradients)': sobel_gradients(x)}
    out = dict(pixels_with_gradient=int(moving.sum()),
               exact_edge_pixels=int((moving & ((exact_gx == 0) | (exact_gy == 0))).sum()))
    for nbins in (9, 18):
        truth = bins(exact_gx, exact_gy, nbins)
        for rule, (gx, gy) in rules.items():
            wrong = moving & (bins(gx, gy, nbins) != truth)
            out[f'nbins {nbins}: {rule}'] = dict(
                pixels_in_another_bin_pct=round(100 * wrong.sum().item() / moving.sum().item(), 4),
                magnitude_in_another_bin_pct=round(
                    100 * magnitude[wrong].sum().item() / magnitude[moving].sum().item(), 4))
    return out


def swin_eps_study(uint8: torch.Tensor) -> dict:
    """Same weights and masks, LayerNorm eps 1e-5 (this project) vs 1e-6 (the release)."""
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, 'configs/localmim_swin-b.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    x = (uint8.float() - MEAN) / STD
    results = {}
    for eps in (1e-5, 1e-6):
        for m in model.backbone.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.eps = eps
        with torch.no_grad():
            torch.manual_seed(1)
            feats, mask, _ = model.backbone(x, mask=True)
            losses = model.head.loss(model.neck(feats), model.target_generator(x), mask)
        results[eps] = (feats, losses)
    (f5, l5), (f6, l6) = results[1e-5], results[1e-6]
    return dict(
        images=int(uint8.shape[0]),
        tap_feature_relative_difference=[
            float((a - b).norm() / b.norm()) for a, b in zip(f5, f6)],
        loss_relative_difference=[float(abs(a - b) / b) for a, b in zip(l5, l6)])


def to_markdown(result: dict, prov: Provenance) -> str:
    lines = ['# Deliberate differences from the release: measured effects', '',
             prov.markdown(), '', '## HOG orientation bins against exact arithmetic', '',
             f'Images: {result["images"]}.', '',
             '| size | nbins | rule | pixels in another bin | gradient magnitude in another bin |',
             '|---|---|---|---|---|']
    for size, study in result['hog_bins'].items():
        for key, value in study.items():
            if not isinstance(value, dict):
                continue
            nbins, rule = key.split(': ', 1)
            lines.append(f'| {size} | {nbins.split()[1]} | {rule} | '
                         f'{value["pixels_in_another_bin_pct"]} % | '
                         f'{value["magnitude_in_another_bin_pct"]} % |')
    lines += ['', '(Shares of the pixels with a non-zero gradient; '
              + '; '.join(f'{size} px: {s["pixels_with_gradient"]} such pixels, '
                          f'{s["exact_edge_pixels"]} with an exactly zero component'
                          for size, s in result['hog_bins'].items()) + '.)', '',
              '## Swin LayerNorm eps 1e-5 (here) vs 1e-6 (release)', '']
    eps = result['swin_eps']
    lines += [f'Fresh LocalMIM Swin-B, {eps["images"]} real images at 224 px, same masks: '
              'relative difference (L2 norm ratio) per tap feature '
              + ', '.join(f'{v:.2e}' for v in eps['tap_feature_relative_difference'])
              + '; per-layer loss ' + ', '.join(f'{v:.2e}' for v in
                                                 eps['loss_relative_difference']) + '.']
    return '\n'.join(lines) + '\n'


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    prov = Provenance.start('release_parity', argv, threads=torch.get_num_threads())
    hog = {}
    for size in args.sizes:
        hog[size] = hog_bin_study(load_uint8(args.images, size, args.max_images))
    swin = swin_eps_study(load_uint8(args.images, 224, min(args.max_images, 16)))
    result = dict(images=osp.relpath(osp.abspath(args.images), REPO), hog_bins=hog,
                  swin_eps=swin)
    result['provenance'] = prov.finish()
    write_outputs(osp.join(args.out_dir, 'release_parity'), result, to_markdown(result, prov))
    return result


if __name__ == '__main__':
    main()
