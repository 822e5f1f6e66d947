"""The repo's pre-training recipes, for tests that must cover every one of them."""
import glob
import json
import os.path as osp
from typing import Dict, List, NamedTuple

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import localmim_mm  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRETRAINING = ('LocalMIM', 'LoMaR')


class Recipe(NamedTuple):
    paths: List[str]  # the recipes with this model and input size, relative to the repo
    img_size: int


def pretraining_recipes() -> List[Recipe]:
    """Every pre-training config under configs/, grouped by identical model and input size."""
    paths = sorted(glob.glob(osp.join(REPO, 'configs', '*.py')) +
                   glob.glob(osp.join(REPO, 'configs', 'localmim', '*.py')) +
                   glob.glob(osp.join(REPO, 'configs', 'lomar', '*.py')))
    groups: Dict[str, Recipe] = {}
    for path in paths:
        cfg = Config.fromfile(path)
        if cfg.get('model', {}).get('type') not in PRETRAINING:
            continue
        size = cfg.model.backbone.get('img_size', 224)
        key = json.dumps([cfg.model.to_dict(), size], sort_keys=True, default=str)
        groups.setdefault(key, Recipe([], size)).paths.append(osp.relpath(path, REPO))
    return list(groups.values())


def recipe_id(recipe: Recipe) -> str:
    return osp.basename(recipe.paths[0])[:-3]


def build_recipe_model(path: str):
    """(config, model) of a recipe, initialised (``init_weights``) and in train mode."""
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, path))
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    return cfg, model
