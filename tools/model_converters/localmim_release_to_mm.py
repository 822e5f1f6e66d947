#!/usr/bin/env python
"""Convert an authors' release LocalMIM checkpoint (huawei-noah/Efficient-Computing) to our layout.

    python tools/model_converters/localmim_release_to_mm.py \
        vit_base_localmim_hog_1600ep_pretrain.pth checkpoints/localmim_vit-base_release.pth

ViT (timm layout ``blocks.N.*`` under ``model``) and Swin pre-training checkpoints (``encoder.*``)
become ``backbone.*`` (mmpretrain ``VisionTransformer`` / ``SwinTransformer`` keys) plus the
per-tap norms as ``neck.norms.K.*``; the Swin PatchMerging weights are re-ordered to mmpretrain's
channel order (see ``localmim_mm/transfer/release_layouts.py``). The pre-training decoders and
HOG filters are dropped (counted in the output). The result loads like a published checkpoint:
``init_cfg=dict(type='LoudPretrained', checkpoint=OUT, prefix='backbone.')``.
"""
import argparse
import os.path as osp

from localmim_mm.transfer.checkpoint_io import (model_state_dict, package_versions,
                                                read_checkpoint, save_pure_checkpoint,
                                                sha256_of)
from localmim_mm.transfer.release_layouts import LAYOUTS, convert_release


def parse_args():
    parser = argparse.ArgumentParser(description='Authors\' LocalMIM release -> localmim_mm')
    parser.add_argument('in_file', help='release checkpoint (.pth)')
    parser.add_argument('out_file', help='output .pth path')
    parser.add_argument('--layout', choices=sorted(LAYOUTS),
                        help='force the input layout (default: detected from the keys)')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='load with the full unpickler (it can run code: only for files '
                        'you trust)')
    return parser.parse_args()


def convert(in_file: str, out_file: str, layout: str = None, trusted: bool = False) -> str:
    state_dict, where = model_state_dict(read_checkpoint(in_file, trusted=trusted), in_file)
    converted, info = convert_release(state_dict, layout)
    meta = dict(key_layout='model', source=osp.basename(in_file), converted_from='release-'
                + info['layout'][0], dropped_keys=len(info['dropped']),
                versions=package_versions())
    save_pure_checkpoint(converted, meta, out_file)
    print(f'converted {len(converted)} of {len(state_dict)} tensors ({info["layout"][0]} release '
          f'layout, from {where}) to {out_file} (sha256 {sha256_of(out_file)[:8]}); dropped '
          f'{len(info["dropped"])} pre-training-only tensors (decoders, HOG filters, '
          'relative_position_index buffers)')
    return out_file


def main():
    args = parse_args()
    convert(args.in_file, args.out_file, args.layout, args.trust_pickle)


if __name__ == '__main__':
    main()
