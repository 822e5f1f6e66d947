"""The authors' five released checkpoints, loadable by URL wherever mmengine loads a checkpoint.

``load_from``, ``init_cfg=dict(type='Pretrained', checkpoint=URL)`` and
``mmpretrain.get_model(name, pretrained=True)`` hand the URL to mmengine's ``CheckpointLoader``;
the scheme registered here for the release's download prefix (and only for it) downloads the
file once into the torch hub cache, reads it with the weights-only unpickler and returns it in
this project's layout (:func:`~localmim_mm.transfer.read_checkpoint`). Every other URL and path
keeps mmengine's loaders unless a run switches on :mod:`localmim_mm.runtime`.
"""
from mmengine.runner.checkpoint import CheckpointLoader

from .checkpoint_io import read_checkpoint

RELEASE_URL_PREFIX = 'https://github.com/Haoqing-Wang/LocalMIM/releases/download/'


def load_release_url(filename: str, map_location=None) -> dict:
    return read_checkpoint(filename, map_location=map_location or 'cpu')


# force=True replaces only this prefix's loader (our own, when the module is reloaded).
CheckpointLoader.register_scheme(prefixes=RELEASE_URL_PREFIX, loader=load_release_url,
                                 force=True)
