#!/usr/bin/env python
"""Publish a runner checkpoint as a pure-tensor model-zoo file.

    python tools/model_converters/publish_model.py work_dirs/run/epoch_1600.pth \
        checkpoints/localmim_vit-base-p16_8xb256-coslr-1600e_in1k.pth [--config CFG]

writes ``checkpoints/localmim_vit-base-p16_8xb256-coslr-1600e_in1k_<YYYYMMDD>-<sha256[:8]>.pth``
holding ``{'state_dict', 'meta'}``: the model's tensors (optimizer, message hub and schedulers
dropped) and a meta with the config text, the package versions, the source epoch / iteration.
The file loads with ``torch.load(path, weights_only=True)`` and is readable by all (0644 under
the usual umask). The path you typed becomes a symbolic link to it, so configs can name the
stable ``checkpoints/localmim_vit-base-p16_8xb256-coslr-1600e_in1k.pth`` (a new publish moves the
link; a regular file there is never replaced). The last line printed is the published file.
Given a file it already published, it says so and prints that file (nothing is written).
"""
import argparse
import os
import os.path as osp

from localmim_mm.transfer.checkpoint_io import (model_state_dict, package_versions,
                                                read_checkpoint, save_pure_checkpoint,
                                                sha256_of, zoo_file_name)

RUNNER_META_KEYS = ('epoch', 'iter', 'seed', 'experiment_name', 'time', 'dataset_meta')


def parse_args():
    parser = argparse.ArgumentParser(description='Publish a runner checkpoint (pure tensors)')
    parser.add_argument('in_file', help='runner checkpoint written by tools/train.py')
    parser.add_argument('out_file', help='output path; the date and sha256 prefix are appended')
    parser.add_argument('--config', help='config file to store in meta (default: the config '
                        'text the runner saved in the checkpoint)')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='load with the full unpickler (it can run code: only for files '
                        'you trust)')
    return parser.parse_args()


def plain(value):
    """Keep only what the weights-only unpickler accepts in meta (JSON-like values)."""
    if isinstance(value, str):
        return str(value)  # not a str subclass (e.g. TorchVersion)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if hasattr(value, 'item') and getattr(value, 'ndim', 1) == 0:
        return value.item()
    return str(value)


def build_meta(ckpt: dict, in_file: str, config: str = None) -> dict:
    runner_meta = ckpt.get('meta') or {}
    if config is not None:
        with open(config) as f:
            config_text = f.read()
    else:
        config_text = runner_meta.get('cfg')
        if not config_text:
            raise ValueError(f'{in_file} carries no config text (meta.cfg); pass --config CFG')
    meta = {k: plain(runner_meta[k]) for k in RUNNER_META_KEYS if k in runner_meta}
    meta.update(config=config_text, versions=package_versions(), source=osp.basename(in_file),
                key_layout='model')
    return meta


def is_published(ckpt: dict) -> bool:
    """A file this script wrote: ``state_dict`` and a meta with the config and key layout."""
    meta = ckpt.get('meta')
    return set(ckpt) == {'state_dict', 'meta'} and isinstance(meta, dict) \
        and 'config' in meta and 'key_layout' in meta


def check_link_target_free(link: str) -> None:
    """The stable name may be a link (moved to the new file) or absent, never a regular file."""
    if osp.lexists(link) and not osp.islink(link):
        raise FileExistsError(f'{link} exists and is not a link made by publish_model.py; move '
                              'it away or choose another output name (nothing was written)')


def point_link(link: str, target: str) -> None:
    """Make ``link`` a relative symbolic link to ``target`` (same folder), replaced atomically."""
    tmp = f'{link}.link.tmp'
    if osp.lexists(tmp):
        os.remove(tmp)
    os.symlink(osp.basename(target), tmp)
    os.replace(tmp, link)


def publish(in_file: str, out_file: str, config: str = None, trusted: bool = False) -> str:
<<<<<<< HEAD
    check_link_target_free(out_file)
    ckpt = read_checkpoint(in_file, trusted=trusted, convert_release=False)
=======
    ckpt = read_checkpoint(in_file, trusted=trusted)
    if is_published(ckpt):
        final = osp.realpath(in_file)
        source = ckpt['meta'].get('source', 'a runner checkpoint')
        print(f'{in_file} is already a published checkpoint (published from {source}; its meta '
              'holds the config): nothing to do, it is the file below')
        print(final)
        return final
    check_link_target_free(out_file)
>>>>>>> edges
    if 'state_dict' not in ckpt:
        raise ValueError(f'{in_file} is not an mmengine runner checkpoint (no "state_dict"; keys '
                         f'{sorted(ckpt)[:8]}). For the authors\' release use '
                         'tools/model_converters/localmim_release_to_mm.py')
    state_dict, _ = model_state_dict(ckpt, in_file)
    meta = build_meta(ckpt, in_file, config)
    stem = osp.splitext(out_file)[0]
    tmp_out = stem + '.unnamed.pth'
    save_pure_checkpoint(state_dict, meta, tmp_out)
    final = osp.join(osp.dirname(stem), zoo_file_name(osp.basename(stem), sha256_of(tmp_out)))
    os.replace(tmp_out, final)
    point_link(out_file, final)
    dropped = sorted(k for k in ckpt if k not in ('state_dict', 'meta'))
    print(f'published {len(state_dict)} tensors (dropped: {", ".join(dropped)}); {out_file} '
          'links to the file below')
    print(final)
    return final


def main():
    args = parse_args()
    publish(args.in_file, args.out_file, args.config, args.trust_pickle)


if __name__ == '__main__':
    main()
