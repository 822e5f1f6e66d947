#!/usr/bin/env python
"""Extract the backbone of a LocalMIM checkpoint for downstream code that wants only it.

    # backbone-relative keys (cls_token, layers.0.attn.qkv.weight, ...): what mmseg's
    # MAE / VisionTransformer backbones load (they ignore init_cfg.prefix)
    python tools/model_converters/extract_backbone.py IN.pth OUT.pth
    # keys kept with their "backbone." prefix: what mmdet's SwinTransformer expects
    python tools/model_converters/extract_backbone.py IN.pth OUT.pth --keep-prefix

IN is a runner, published or converted-release checkpoint with ``backbone.*`` keys. OUT holds
``{'state_dict', 'meta'}`` (pure tensors); ``meta['key_layout']`` says ``'backbone-relative'`` or
``'backbone-prefixed'``.
"""
import argparse
import os.path as osp

from localmim_mm.transfer.checkpoint_io import (model_state_dict, package_versions,
                                                read_checkpoint, save_pure_checkpoint,
                                                select_prefix, sha256_of)

PREFIX = 'backbone.'


def parse_args():
    parser = argparse.ArgumentParser(description='Extract the backbone tensors of a checkpoint')
    parser.add_argument('in_file', help='runner / published / converted checkpoint')
    parser.add_argument('out_file', help='output .pth path')
    parser.add_argument('--keep-prefix', action='store_true',
                        help='keep the "backbone." prefix (mmdet SwinTransformer); default strips '
                        'it (mmseg MAE / VisionTransformer)')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='load with the full unpickler (it can run code: only for files '
                        'you trust)')
    return parser.parse_args()


def extract(in_file: str, out_file: str, keep_prefix: bool = False,
            trusted: bool = False) -> str:
    ckpt = read_checkpoint(in_file, trusted=trusted)
    state_dict, _ = model_state_dict(ckpt, in_file)
    backbone = select_prefix(state_dict, PREFIX, in_file)
    if keep_prefix:
        backbone = {PREFIX + k: v for k, v in backbone.items()}
    layout = 'backbone-prefixed' if keep_prefix else 'backbone-relative'
    source_meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    meta = dict(key_layout=layout, source=osp.basename(in_file), versions=package_versions())
    if 'config' in source_meta or 'cfg' in source_meta:
        meta['config'] = source_meta.get('config') or source_meta.get('cfg')
    save_pure_checkpoint(backbone, meta, out_file)
    print(f'extracted {len(backbone)} of {len(state_dict)} tensors ({layout} keys) to '
          f'{out_file} (sha256 {sha256_of(out_file)[:8]})')
    return out_file


def main():
    args = parse_args()
    extract(args.in_file, args.out_file, args.keep_prefix, args.trust_pickle)


if __name__ == '__main__':
    main()
