"""Building a model from its config and loading a checkpoint into it, without a Runner.

Checkpoints are read by :func:`localmim_mm.transfer.read_checkpoint` (weights-only; runner,
published and the authors' release files, paths or URLs).
"""
from typing import Callable, Dict, Sequence, Set, Tuple, Union

import mmpretrain
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from torch import nn

from localmim_mm import datasets, models  # noqa: F401  (registers what a model config names)
from localmim_mm.models.utils import model_input_size  # noqa: F401  (re-exported)
from localmim_mm.transfer import read_checkpoint

__all__ = ['build_model', 'model_from_config', 'read_state_dict', 'load_checkpoint_into',
           'model_input_size']


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The ``state_dict`` of a runner, published or release checkpoint (``weights_only``
    loading); a truncated or damaged file raises ``CorruptCheckpointError`` before unpickling."""
    ckpt = read_checkpoint(path)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'checkpoint {path!r} has no state_dict of tensors')
    if all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return state


def _add_backbone_prefix(model: nn.Module, state: dict) -> dict:
    """Accept a bare ViT state dict (no ``backbone.`` prefix) when its keys are the backbone's."""
    if any(k.startswith('backbone.') for k in state) or not hasattr(model, 'backbone'):
        return state
    backbone_keys = set(model.backbone.state_dict())
    if backbone_keys & set(state):
        return {f'backbone.{k}': v for k, v in state.items()}
    return state


def load_checkpoint_into(model: nn.Module, state: dict, required: Sequence[str] = ('backbone',),
                         source: str = 'the checkpoint') -> Set[str]:
    """Load ``state`` into ``model``, insisting on the ``required`` top-level parts.

    Returns the top-level parts (``backbone``, ``neck``, ``head``, ...) whose every key was
    loaded; other parts keep their initial values and the caller must not use them. Keys of
    ``state`` that the model lacks are reported and skipped.
    """
    state = _add_backbone_prefix(model, state)
    model_state = model.state_dict()
    parts = {k.split('.')[0] for k in model_state}
    present = {p for p in parts if all(k in state for k in model_state if k.split('.')[0] == p)}
    for part in required:
        if part in present:
            continue
        if part not in parts:
            raise ValueError(f'this tool needs a model with a {part}; the {type(model).__name__} '
                             f'built from the config has none (its parts: {sorted(parts)})')
        if part != 'backbone' and 'backbone' in present and not any(
                not k.startswith('backbone.') for k in state):
            raise ValueError(f'this tool needs a full pre-training checkpoint (backbone, neck and '
                             f'decoder heads); {source} has only backbone.* keys. Use the '
                             'epoch_*.pth written by tools/train.py, not a published backbone.')
        missing = [k for k in model_state if k.split('.')[0] == part and k not in state]
        raise ValueError(f'{source} lacks {len(missing)} {part}.* keys of the model built from the '
                         f'config (e.g. {missing[:3]}); check that config and checkpoint match')
    loadable = {}
    for key, value in state.items():
        if key not in model_state:
            continue
        if value.shape != model_state[key].shape:
            raise ValueError(f'{source}: {key} has shape {tuple(value.shape)} but the model built '
                             f'from the config expects {tuple(model_state[key].shape)}; check that '
                             'config and checkpoint match')
        loadable[key] = value
    skipped = sorted(set(state) - set(model_state))
    if skipped:
        print_log(f'{source}: {len(skipped)} keys the model does not have were skipped '
                  f'(e.g. {skipped[:3]})', logger='current')
    model.load_state_dict(loadable, strict=False)
    return present


def model_from_config(config: Union[str, Config], cfg_options: dict = None) -> nn.Module:
    """The model of a config (path or ``Config``), built as mmpretrain's ``get_model`` builds
    it (the config's ``data_preprocessor``, mmpretrain scope), in eval mode, weights as
    initialised."""
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return mmpretrain.get_model(cfg)


def build_model(config: str, checkpoint: str, required: Sequence[str] = ('backbone',),
                device: str = 'cpu', cfg_options: dict = None,
                check: Callable[[nn.Module], None] = None) -> Tuple[nn.Module, Set[str]]:
    """Build ``cfg.model`` and load ``checkpoint``; returns the eval-mode model and the parts
    loaded from the checkpoint (see :func:`load_checkpoint_into`). ``check(model)`` runs
    before loading (a tool's refusal of a model it cannot use comes before checkpoint errors)."""
    model = model_from_config(config, cfg_options)
    if check is not None:
        check(model)
    loaded = load_checkpoint_into(model, read_state_dict(checkpoint), required,
                                  source=f'checkpoint {checkpoint!r}')
    return model.to(device).eval(), loaded
