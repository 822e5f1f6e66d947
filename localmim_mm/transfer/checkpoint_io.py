"""Reading and writing checkpoint files for transfer (shared by the converters and the loader).

Published / transfer files are pure tensors: ``{'state_dict': {name: Tensor}, 'meta': {...}}``
with only plain Python values in ``meta``, so they load with ``torch.load(weights_only=True)``.
Writing goes through a temporary file and a re-load check, so a failed conversion never leaves an
empty or partial file behind.
"""
import argparse
import datetime
import hashlib
import os.path as osp
import pickle
from importlib import metadata
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log

from .checkpoint_file import atomic_output, check_checkpoint_file

from .downloads import cached_download, is_url

StateDict = Dict[str, torch.Tensor]
VERSIONED_PACKAGES = ('torch', 'mmengine', 'mmcv', 'mmpretrain', 'mmdet', 'mmsegmentation',
                      'localmim_mm')


def read_checkpoint(source: str, map_location: str = 'cpu', trusted: bool = False,
                    convert_release: bool = True) -> dict:
    """Load a checkpoint file or URL with the weights-only unpickler.

    ``source`` is a path or an http(s) URL (downloaded once into the torch hub cache, see
    :func:`~localmim_mm.transfer.downloads.cached_download`). Besides tensors and plain data,
    the unpickler accepts only what our checkpoints hold: a runner checkpoint's message-hub
    buffers and numpy values (``RUNNER_CHECKPOINT_TYPES``), and the ``argparse.Namespace`` the
    authors' release files pickle. With ``convert_release`` an authors' release file comes back
    in this project's layout (``{'state_dict': ..., 'meta': {'converted_from': ...}}``), whole.

    ``trusted=True`` uses the full unpickler (it can run code: only for files you trust). A
    truncated or damaged file raises :class:`~.checkpoint_file.CorruptCheckpointError` before
    any unpickling, whatever ``trusted``."""
    path = cached_download(source) if is_url(source) else source
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist; give the path or URL of a '
                                '.pth file (runner, published or authors\' release checkpoint)')
    check_checkpoint_file(path)
    with torch.serialization.safe_globals(_not_yet_allowed(RUNNER_CHECKPOINT_TYPES
                                                           + RELEASE_PICKLED_TYPES)):
        ckpt = _unpickle(path, map_location, trusted)
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path!r} holds a {type(ckpt).__name__}, not a checkpoint dict')
    if convert_release and is_release_checkpoint(ckpt):
        ckpt = converted_release_checkpoint(ckpt, source)
    return ckpt


def _numpy_types() -> list:
    core = np._core if hasattr(np, '_core') else np.core
    types = [np.dtype, np.ndarray, core.multiarray.scalar, core.multiarray._reconstruct]
    return types + [type(np.dtype(name))
                    for name in ('float64', 'float32', 'int64', 'int32', 'bool')]


# What a runner checkpoint pickles besides tensors and plain data (with the runtime layer's
# HistoryBuffer reducer, see localmim_mm.runtime.checkpoints), and what the release's
# ``save_model`` pickles: its arguments.
RUNNER_CHECKPOINT_TYPES = [HistoryBuffer, *_numpy_types()]
RELEASE_PICKLED_TYPES = [argparse.Namespace]


def _not_yet_allowed(types: list) -> list:
    # torch's safe_globals context removes its types on exit, even those allowed before it.
    allowed = set(torch.serialization.get_safe_globals())
    return [t for t in types if t not in allowed]


def is_release_checkpoint(ckpt: dict) -> bool:
    """An authors' release pre-training file: its tensors under ``model``, in a release layout."""
    from .release_layouts import LAYOUTS
    state = ckpt.get('model')
    return isinstance(state, dict) and any(layout['signature'] in state
                                           for layout in LAYOUTS.values())


def converted_release_checkpoint(ckpt: dict, source: str) -> dict:
    """The whole release model in this project's layout, with what was done in ``meta`` and the
    log (the same file always gives the same tensors: the conversion is a fixed key map)."""
    from .release_layouts import convert_release, summarize_names
    state_dict, _ = model_state_dict(ckpt, source)
    converted, info = convert_release(state_dict)
    layout = info['layout'][0]
    print_log(f'{source}: authors\' release checkpoint ({layout} layout) converted on the fly: '
              f'{len(converted)} tensors in this project\'s layout from {len(state_dict)} release '
              f'tensors (dropped, recomputed here and checked equal: '
              f'{summarize_names(info["dropped"]) or "none"})', logger='current')
    meta = dict(converted_from=f'release-{layout}', source=source, dropped_keys=info['dropped'])
    return {'state_dict': converted, 'meta': meta}


def _unpickle(path: str, map_location: str, trusted: bool):
    try:
        return torch.load(path, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as err:
        if trusted:
            raise ValueError(f'{path!r} does not unpickle: {err}') from err
        raise ValueError(
            f'{path!r} does not load with torch.load(weights_only=True): {err}. The file pickles '
            'Python objects beyond tensors, plain data and what runner (written with the '
            'localmim_mm runtime) and release checkpoints hold; if you trust it, the converters '
            'accept --trust-pickle') from err
    except Exception as err:  # a damaged member the whole-file check cannot see
        raise ValueError(f'{path!r} cannot be read by torch.load ({type(err).__name__}: {err}); '
                         'the file may be corrupt') from err


def model_state_dict(ckpt: dict, path: str = 'checkpoint') -> Tuple[StateDict, str]:
    """The tensors of a checkpoint and where they were: ``'state_dict'`` (mmengine runner or
    published), ``'model'`` (the authors' timm/MAE-style release) or the top level (raw)."""
    for key in ('state_dict', 'model'):
        if isinstance(ckpt.get(key), dict):
            return _only_tensors(ckpt[key], f'{path}[{key!r}]'), key
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return dict(ckpt), 'top level'
    raise ValueError(f'{path}: no state dict found: expected a "state_dict" (mmengine) or "model" '
                     f'(authors\' release) entry, or a plain name->tensor dict; top-level keys '
                     f'are {sorted(ckpt)[:10]}')


def _only_tensors(state_dict: dict, where: str) -> StateDict:
    bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f'{where} holds non-tensor entries {bad[:5]}; not a model state dict')
    if not state_dict:
        raise ValueError(f'{where} is empty: nothing to convert or load')
    return dict(state_dict)


def select_prefix(state_dict: StateDict, prefix: Optional[str], source: str = 'checkpoint'
                  ) -> StateDict:
    """Keys starting with ``prefix``, prefix removed (all keys when ``prefix`` is None/empty)."""
    if not prefix:
        return dict(state_dict)
    selected = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not selected:
        heads = sorted({k.split('.')[0] for k in state_dict})
        raise ValueError(
            f'no key of {source} starts with prefix {prefix!r}; its keys start with {heads[:12]}. '
            'A backbone-only file (tools/model_converters/extract_backbone.py) needs prefix=None; '
            'an authors\' release file must first go through '
            'tools/model_converters/localmim_release_to_mm.py')
    return selected


def package_versions() -> Dict[str, str]:
    versions = {'torch': str(torch.__version__)}  # with its build tag (e.g. +cu130)
    for name in VERSIONED_PACKAGES[1:]:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == 'localmim_mm':
                from ..version import __version__
                versions[name] = __version__
    return versions


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def zoo_file_name(name: str, sha256: str, date: Optional[datetime.date] = None) -> str:
    """Model-zoo file name ``<name>_<YYYYMMDD>-<sha256[:8]>.pth``."""
    date = date or datetime.date.today()
    return f'{name}_{date.strftime("%Y%m%d")}-{sha256[:8]}.pth'


def save_pure_checkpoint(state_dict: StateDict, meta: dict, out_path: str) -> str:
    """Write ``{'state_dict', 'meta'}`` atomically and check it re-loads weights-only. The file
    gets the usual permissions of a new file (0o644 under umask 022)."""
    if not state_dict:
        raise ValueError(f'refusing to write {out_path!r}: the state dict is empty')
    _only_tensors(state_dict, 'state dict to save')
    with atomic_output(out_path, suffix='.pth.tmp') as tmp:
        torch.save({'state_dict': state_dict, 'meta': meta}, tmp)
        reloaded = torch.load(tmp, map_location='cpu', weights_only=True)
        if sorted(reloaded['state_dict']) != sorted(state_dict):
            raise RuntimeError(f'{tmp} re-loaded with different keys')
    return out_path
