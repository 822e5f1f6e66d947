"""The plugin's model zoo in mmpretrain's model API.

``import localmim_mm`` registers the model index (every ``configs/**/metafile.yml``) with
mmpretrain's public ``ModelHub.register_model_index``, so ``mmpretrain.list_models('*localmim*')``
and ``mmpretrain.get_model(name, pretrained=...)`` reach every recipe and the authors' five
released checkpoints. :func:`get_model` is ``mmpretrain.get_model`` plus what a zoo user needs on
top: close names for a typo, a clear word on detection / segmentation entries and on
``pretrained=True`` without weights, and an inference pipeline on pre-training entries so that
``FeatureExtractor(get_model(...))`` works on images.
"""
import difflib
import os.path as osp
from typing import Union

import mmpretrain
from mmpretrain.apis import ModelHub

from .transfer import load_pretrained

PACKAGE_DIR = osp.dirname(osp.abspath(__file__))
# Any entry of ours: present in ModelHub once the index is registered.
_SENTINEL = 'localmim_vit-base-p16_release-1600e_in1k'
_DOWNSTREAM_TOOLS = {'mask-rcnn': 'mmdet\'s tools/train.py (see docs/transfer.md)',
                     'upernet': 'mmseg\'s tools/train.py (see docs/transfer.md)'}


def index_location() -> str:
    """The model index: the source checkout's when running from one (editable install), else the
    copy a wheel ships in ``localmim_mm/.mim`` (OpenMMLab's layout, see setup.py)."""
    checkout = osp.dirname(PACKAGE_DIR)
    if osp.isfile(osp.join(checkout, 'model-index.yml')) and osp.isdir(osp.join(checkout,
                                                                                'configs')):
        return osp.join(checkout, 'model-index.yml')
    shipped = osp.join(PACKAGE_DIR, '.mim', 'model-index.yml')
    if osp.isfile(shipped):
        return shipped
    raise FileNotFoundError(f'localmim_mm: no model-index.yml beside {PACKAGE_DIR} nor in its '
                            '.mim folder; reinstall the package (pip install .)')


def register_model_index() -> None:
    """Register our model index with mmpretrain once (a second import or a reload is a no-op)."""
    if not ModelHub.has(_SENTINEL):
        index = index_location()
        # Config paths in the metafiles are relative to the index's folder, as in mmpretrain's.
        ModelHub.register_model_index(index, config_prefix=osp.dirname(index))


def get_model(name: str, pretrained: Union[bool, str] = False, **kwargs):
    """``mmpretrain.get_model`` for our zoo entries, with clear errors and, for a pre-training
    entry, an inference pipeline (resize + centre crop to the model's input size) in
    ``model._config`` so ``mmpretrain.FeatureExtractor(model)`` reads images.

    ``pretrained``: ``True`` for the entry's ``Weights`` (the authors' release entries), or a
    path / URL (runner, published or release file; a URL is downloaded once to the torch hub
    cache and release files are converted on the fly).
    """
    metainfo = _metainfo(name)
    _check_buildable(name, metainfo)
    if pretrained is True and not metainfo.weights:
        raise ValueError(f'{name!r} has no released weights (Weights: null in its metafile): '
                         'pass pretrained=PATH_OR_URL of your own checkpoint, or pick an entry '
                         f'with weights: {", ".join(released_entries())}')
    config = metainfo.config
    if _is_pretraining(config):
        config = with_inference_pipeline(config)
    if pretrained is True:
        pretrained = metainfo.weights
    model = mmpretrain.get_model(config, **kwargs)
    if pretrained:
        # Unlike mmengine's load_checkpoint (strict=False: a file of another architecture would
        # load partly with a warning), this loads whole or raises with the mismatches listed.
        load_pretrained(model, pretrained)
    return model


def released_entries() -> list:
    return [n for n in mmpretrain.list_models('*localmim*') + mmpretrain.list_models('*lomar*')
            if ModelHub.get(n).weights]


def _metainfo(name: str):
    try:
        return ModelHub.get(name)
    except ValueError:
        known = mmpretrain.list_models('*localmim*') + mmpretrain.list_models('*lomar*')
        close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.6)
        hint = f'did you mean {" or ".join(close)}?' if close else \
            'mmpretrain.list_models("*localmim*") lists them'
        raise ValueError(f'no model named {name!r} in the zoo; {hint}') from None


def _check_buildable(name: str, metainfo) -> None:
    for prefix, tool in _DOWNSTREAM_TOOLS.items():
        if name.startswith(prefix):
            raise ValueError(f'{name!r} is a {prefix} recipe listed for reference; get_model '
                             f'builds pre-training and classification models only. Train or '
                             f'test it with {tool}: its config is {metainfo.config.filename}')


def _is_pretraining(config) -> bool:
    return 'test_dataloader' not in config


def with_inference_pipeline(config):
    """A copy of a pre-training config with ``test_dataloader.dataset.pipeline`` (what
    mmpretrain's inferencers read): resize the short edge to 8/7 of the input size, centre crop
    to it (the usual evaluation crop), pack."""
    size = config.model.backbone.get('img_size', 224)
    config = config.copy()
    config.test_dataloader = dict(dataset=dict(type='CustomDataset', pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=size * 8 // 7, edge='short'),
        dict(type='CenterCrop', crop_size=size),
        dict(type='PackInputs'),
    ]))
    return config
