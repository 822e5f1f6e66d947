#!/usr/bin/env python
"""Convert an authors' release LocalMIM checkpoint (huawei-noah/Efficient-Computing) to our layout.

    python tools/model_converters/localmim_release_to_mm.py \
        vit_base_localmim_hog_1600ep_pretrain.pth checkpoints/localmim_vit-base_release.pth

The whole pre-training model is converted: ViT (timm layout ``blocks.N.*`` under ``model``) and
Swin (``encoder.*``) encoders become ``backbone.*`` (mmpretrain ``VisionTransformer`` /
``SwinTransformer`` keys; the Swin PatchMerging weights re-ordered to mmpretrain's channel
order), the per-tap norms ``neck.norms.K.*``, the decoders ``head.decoders.K.*`` and the HOG
layers' frozen biases ``target_generator.hog_bias`` (see
``localmim_mm/transfer/release_layouts.py``). Constants that this project recomputes (decoder
sin-cos tables, Sobel filters, Swin ``relative_position_index``) are checked and dropped; the
summary names every dropped key. The output is a pure-tensor file that

* continues pre-training or feeds the analysis tools:
  ``--cfg-options load_from=OUT`` with the matching pre-training config;
* transfers like a published checkpoint:
  ``init_cfg=dict(type='LoudPretrained', checkpoint=OUT, prefix='backbone.')``.

Converting by hand is optional: every loader of this project (``load_from``, ``init_cfg``,
``localmim_mm.zoo.get_model(name, pretrained=...)``) converts a release file or URL on the fly.

Release files pickle their ``argparse`` arguments (``args``); they load without
``--trust-pickle``: exactly ``argparse.Namespace`` is allowed besides tensors and plain data.
"""
import argparse
import os.path as osp


from localmim_mm.transfer.checkpoint_io import (model_state_dict, package_versions,
                                                read_checkpoint, save_pure_checkpoint,
                                                sha256_of)
from localmim_mm.transfer.release_layouts import LAYOUTS, convert_release, summarize_names

def parse_args():
    parser = argparse.ArgumentParser(description='Authors\' LocalMIM release -> localmim_mm')
    parser.add_argument('in_file', help='release checkpoint (.pth)')
    parser.add_argument('out_file', help='output .pth path')
    parser.add_argument('--layout', choices=sorted(LAYOUTS),
                        help='force the input layout (default: detected from the keys)')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='load with the full unpickler (it can run code: only for files '
                        'you trust, and only if a file holds more than the release\'s own types)')
    return parser.parse_args()


def read_release_checkpoint(path: str, trusted: bool = False) -> dict:
    """The file as the release wrote it (the weights-only unpickler accepts its Namespace)."""
    return read_checkpoint(path, trusted=trusted, convert_release=False)


def convert(in_file: str, out_file: str, layout: str = None, trusted: bool = False) -> str:
    state_dict, where = model_state_dict(read_release_checkpoint(in_file, trusted), in_file)
    converted, info = convert_release(state_dict, layout)
    meta = dict(key_layout='model', source=osp.basename(in_file), converted_from='release-'
                + info['layout'][0], dropped_keys=info['dropped'], versions=package_versions())
    save_pure_checkpoint(converted, meta, out_file)
    print(summary(converted, state_dict, info, where, out_file))
    return out_file


def summary(converted: dict, state_dict: dict, info: dict, where: str, out_file: str) -> str:
    parts = {}
    for key in converted:
        parts[key.split('.')[0]] = parts.get(key.split('.')[0], 0) + 1
    counts = ', '.join(f'{part} {n}' for part, n in parts.items())
    text = (f'converted {len(state_dict) - len(info["dropped"])} of {len(state_dict)} tensors '
            f'({info["layout"][0]} release layout, from {where}) to {out_file} (sha256 '
            f'{sha256_of(out_file)[:8]}): {counts}')
    if info['hog_bias']:
        text += f' (target_generator.hog_bias from {summarize_names(info["hog_bias"])})'
    if info['dropped']:
        text += (f'; dropped, recomputed here and checked equal: '
                 f'{summarize_names(info["dropped"])}')
    return text


def main():
    args = parse_args()
    convert(args.in_file, args.out_file, args.layout, args.trust_pickle)


if __name__ == '__main__':
    main()
