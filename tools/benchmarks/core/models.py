"""Models built from configs as the mmengine Runner builds them: this repository's configs and
mmpretrain's stock recipes (the files shipped in the mmpretrain package)."""
import copy
import os.path as osp
from typing import Optional

import mmpretrain
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

import localmim_mm  # noqa: F401  (registers the LocalMIM modules)

from . import REPO

MMPRETRAIN_CONFIG_DIR = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs')
MMPRETRAIN_CONFIGS = {
    'mae': 'mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
    'maskfeat': 'maskfeat/maskfeat_vit-base-p16_8xb256-amp-coslr-300e_in1k.py',
    'simmim': 'simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py',
}
LOCAL_CONFIGS = {
    'localmim_vit': 'configs/_base_/models/localmim_vit-base-p16.py',
    'localmim_vit_recipe': 'configs/localmim/localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py',
    'localmim_vit_pixel':
        'configs/localmim/localmim_vit-base-p16-pixel_8xb256-amp-coslr-1600e_in1k.py',
    'localmim_swin': 'configs/_base_/models/localmim_swin-base-w7.py',
    'lomar': 'configs/_base_/models/lomar_vit-base-p16.py',
}
DEFAULT_PREPROCESSOR = dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                            std=[58.395, 57.12, 57.375], to_rgb=True)


class Unavailable(Exception):
    """A model that cannot be built here (config or registered modules missing)."""


def load_config(key: str) -> Config:
    """A config of :data:`MMPRETRAIN_CONFIGS` or :data:`LOCAL_CONFIGS` by its key."""
    if key in MMPRETRAIN_CONFIGS:
        return Config.fromfile(osp.join(MMPRETRAIN_CONFIG_DIR, MMPRETRAIN_CONFIGS[key]))
    path = osp.join(REPO, LOCAL_CONFIGS[key])
    if not osp.exists(path):
        raise Unavailable(f'config {LOCAL_CONFIGS[key]} does not exist')
    return Config.fromfile(path)


def _plain(cfg) -> dict:
    return cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)


def model_cfg(cfg: Config, default_preprocessor: Optional[dict] = DEFAULT_PREPROCESSOR) -> dict:
    """The model dict as the Runner builds it: the Runner takes a top-level data_preprocessor
    (set by mmpretrain's dataset bases); without one, ``default_preprocessor`` (None: none)."""
    model = _plain(cfg.model)
    if 'data_preprocessor' not in model:
        preprocessor = cfg.get('data_preprocessor') or default_preprocessor
        if preprocessor is not None:
            model['data_preprocessor'] = _plain(preprocessor)
    return model


def pipeline_step(cfg: Config, type_name: str) -> dict:
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == type_name:
            return dict(step)
    raise KeyError(f'{type_name} not found in the train pipeline of the config')


def check_registered(model: dict) -> None:
    if MODELS.get(model['type']) is None:
        raise Unavailable(f'model type {model["type"]!r} is not registered')
    for key in ('backbone', 'neck', 'head', 'target_generator'):
        sub = model.get(key)
        if isinstance(sub, dict) and MODELS.get(sub['type']) is None:
            raise Unavailable(f'{key} type {sub["type"]!r} is not registered')


def build_model(model: dict, seed: Optional[int] = None) -> torch.nn.Module:
    """Build and initialise a model the way the Runner does (its own ``init_weights``), after
    ``torch.manual_seed(seed)`` when a seed is given. ``model`` is not modified."""
    check_registered(model)
    if seed is not None:
        torch.manual_seed(seed)
    built = MODELS.build(copy.deepcopy(model))
    built.init_weights()
    return built
