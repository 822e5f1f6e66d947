#!/usr/bin/env python
"""Normalized mutual information between query and key patches, per layer.

    python tools/analysis_tools/layer_nmi.py CONFIG CHECKPOINT [--label NAME] \
        [--compare CONFIG2 CHECKPOINT2 NAME2 ...] [--images FILE_OR_FOLDER ...] --out-dir DIR

For every encoder layer (and, when the checkpoint has them, every pre-training decoder block:
LocalMIM's per-layer decoders, MAE's decoder) the attention of each query patch over the key
patches gives ``p(k|q)``; with uniform queries ``p(q) = 1/N`` the tool reports
``NMI = I(Q;K) / sqrt(H(Q) H(K))`` averaged over heads and images. Patch tokens only: the cls
token's row and column are dropped and each row renormalised. Decoders run on masked inputs
(mask drawn with ``--seed``); the encoder sees the whole image.

Writes ``nmi.json`` and ``nmi.png`` (NMI vs encoder depth, one line per checkpoint).
"""
import argparse
import json
import os
import os.path as osp

import torch

from localmim_mm.analysis import (ImageInput, attention_nmi, build_model, decoder_attentions,
                                  encoder_attentions, find_images, model_input_size, save_png)
from localmim_mm.analysis.cli import add_image_args, add_model_args, use_agg_backend


def parse_args():
    parser = argparse.ArgumentParser(
        description='Query/key NMI of the attention at every layer of ViT checkpoints')
    add_model_args(parser)
    add_image_args(parser, max_images=32)
    parser.add_argument('--label', help='name of CHECKPOINT in the plot (default: file name)')
    parser.add_argument('--compare', nargs=3, action='append', default=[],
                        metavar=('CONFIG', 'CHECKPOINT', 'LABEL'),
                        help='another checkpoint on the same plot (repeatable)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the decoders\' random mask')
    parser.add_argument('--no-decoders', action='store_true',
                        help='skip the pre-training decoders even when the checkpoint has them')
    return parser.parse_args()


def _mean_nmi(maps):
    """Mean over images of the per-head NMI of a list of (1, heads, N, N) maps."""
    per_head = torch.cat([attention_nmi(a) for a in maps]).mean(0)
    return per_head.mean().item(), per_head.tolist()


def has_decoder_weights(model, loaded) -> bool:
    """Whether every part beside the backbone (neck, head: the decoders) came from the
    checkpoint; a published backbone-only file leaves them at their initial values."""
    parts = {k.split('.')[0] for k in model.state_dict()}
    others = parts - {'backbone', 'target_generator', 'data_preprocessor'}
    return bool(others) and others <= loaded


def model_nmi(config, checkpoint, label, paths, args):
    model, loaded = build_model(config, checkpoint, device=args.device,
                                cfg_options=args.cfg_options)
    size = model_input_size(model)
    with_decoders = not args.no_decoders and has_decoder_weights(model, loaded)
    encoder, decoders = {}, {}
    for path in paths:
        x = ImageInput(path, size, model.data_preprocessor).tensor(args.device)
        for layer, attn in encoder_attentions(model, x).items():
            encoder.setdefault(layer, []).append(attn)
        if with_decoders:
            for name, attn in decoder_attentions(model, x, args.seed).items():
                decoders.setdefault(name, []).append(attn)
    layers = sorted(encoder)
    enc = [_mean_nmi(encoder[i]) for i in layers]
    dec = {name: _mean_nmi(maps) for name, maps in decoders.items()}
    return dict(
        label=label, config=config, checkpoint=checkpoint, input_size=list(size),
        encoder=dict(layers=layers, nmi=[m for m, _ in enc], nmi_per_head=[h for _, h in enc]),
        decoders={name: dict(nmi=m, nmi_per_head=h) for name, (m, h) in dec.items()})


def plot(results, path):
    import matplotlib.pyplot as plt
    with_decoders = any(r['decoders'] for r in results)
    fig, axes = plt.subplots(1, 2 if with_decoders else 1, figsize=(11 if with_decoders else 6, 4),
                             squeeze=False)
    ax = axes[0, 0]
    for r in results:
        ax.plot(r['encoder']['layers'], r['encoder']['nmi'], marker='o', label=r['label'])
    ax.set_xlabel('encoder block (0-indexed)')
    ax.set_ylabel('NMI(query; key), patch tokens')
    ax.set_title('encoder')
    ax.grid(alpha=.3)
    ax.legend(fontsize=8)
    if with_decoders:
        ax = axes[0, 1]
        for r in results:
            names = list(r['decoders'])
            ax.plot(names, [r['decoders'][n]['nmi'] for n in names], marker='s', linestyle='',
                    label=r['label'])
        ax.set_title('pre-training decoders (masked input)')
        ax.tick_params(axis='x', labelrotation=30, labelsize=8)
        ax.grid(alpha=.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)


def main():
    args = parse_args()
    use_agg_backend()
    paths = find_images(args.images, args.max_images)
    runs = [(args.config, args.checkpoint,
             args.label or osp.splitext(osp.basename(args.checkpoint))[0])] + list(args.compare)
    results = [model_nmi(config, ckpt, label, paths, args) for config, ckpt, label in runs]
    os.makedirs(args.out_dir, exist_ok=True)
    summary = dict(
        images=paths, seed=args.seed,
        tokens='patch tokens only: cls row and column dropped, each row renormalised',
        averaged_over='heads and images', models=results)
    with open(osp.join(args.out_dir, 'nmi.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    plot(results, osp.join(args.out_dir, 'nmi.png'))
    for r in results:
        values = ' '.join(f'{v:.3f}' for v in r['encoder']['nmi'])
        print(f'{r["label"]}: encoder NMI per block {values}')
    print(f'wrote nmi.json and nmi.png to {args.out_dir}')


if __name__ == '__main__':
    main()
