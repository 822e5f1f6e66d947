"""Checkpoint URLs: downloaded once into the torch hub cache, checked before anything reads them.

The file lands where ``torch.hub.load_state_dict_from_url`` (and so mmengine's http loader) puts
it, ``<torch.hub.get_dir()>/checkpoints/<file name>``, so either finds the other's download. In
a distributed run only local rank 0 downloads; the others wait for it. A download that fails,
is cut short or turns out to be a web page leaves nothing in the cache.
"""
import os
import os.path as osp
from urllib.parse import urlparse

import torch
from mmengine import dist
from mmengine.logging import print_log

from .checkpoint_file import CorruptCheckpointError, check_checkpoint_file


def is_url(source: str) -> bool:
    return isinstance(source, str) and source.startswith(('http://', 'https://'))


def cache_path(url: str) -> str:
    name = osp.basename(urlparse(url).path)
    if not name:
        raise ValueError(f'checkpoint URL {url!r} names no file; give the URL of a .pth file')
    return osp.join(torch.hub.get_dir(), 'checkpoints', name)


def cached_download(url: str) -> str:
    """The local path of ``url``'s file, downloading it first unless it is already cached."""
    path = cache_path(url)
    error = None
    if dist.get_local_rank() == 0 and not osp.isfile(path):
        try:
            _download_checked(url, path)
        except Exception as err:  # raised after the barrier, so no rank waits forever
            error = err
    dist.barrier()
    if error is not None:
        raise error
    if not osp.isfile(path):
        raise RuntimeError(f'local rank 0 could not download {url!r} (see its log); nothing was '
                           'loaded')
    return path


def _download_checked(url: str, path: str) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    print_log(f'downloading {url} to {path}', logger='current')
    try:
        torch.hub.download_url_to_file(url, path, progress=True)
    except OSError as err:  # URLError, connection refused or reset, DNS failure
        _remove(path)
        if 'IncompleteRead' in repr(err) or isinstance(err.__cause__, EOFError):
            raise _cut_short(url, path) from err
        raise ConnectionError(
            f'cannot download {url!r} ({err}): this machine seems to be offline or the address '
            'is wrong. Download the file elsewhere and pass its local path instead (e.g. '
            f'pretrained=\'/path/to/{osp.basename(path)}\', init_cfg.checkpoint=PATH or '
            f'load_from=PATH), or copy it to {path}') from err
    except Exception as err:  # http.client.IncompleteRead and the like: the transfer broke off
        _remove(path)
        raise _cut_short(url, path) from err
    _check_downloaded(url, path)


def _check_downloaded(url: str, path: str) -> None:
    with open(path, 'rb') as f:
        head = f.read(256).lstrip().lower()
    if head.startswith((b'<!doctype', b'<html', b'<?xml', b'<head', b'<body')):
        _remove(path)
        raise ValueError(f'{url!r} returned a web page (HTML), not a checkpoint: the address is '
                         'probably a page about the file rather than the file itself (on GitHub, '
                         'use the release asset\'s download link); nothing was kept or loaded')
    try:
        check_checkpoint_file(path)
    except CorruptCheckpointError as err:
        _remove(path)
        raise _cut_short(url, path) from err


def _cut_short(url: str, path: str) -> ValueError:
    return ValueError(f'the download of {url!r} was cut short or damaged (the file is not a whole '
                      f'torch checkpoint); the partial file was removed from {osp.dirname(path)} '
                      'and nothing was loaded: try again, or download it by other means and pass '
                      'the local path')


def _remove(path: str) -> None:
    if osp.exists(path):
        os.remove(path)
