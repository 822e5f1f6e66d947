"""``LoudPretrained``: ``Pretrained`` that reports what it loaded and fails on a bad match.

Usage, on any backbone of mmpretrain / mmdet / mmseg (the class is in mmengine's root
``WEIGHT_INITIALIZERS``, so every scope finds it)::

    init_cfg=dict(type='LoudPretrained', checkpoint=PATH, prefix='backbone.',
                  allow_missing=['ln2.*'])

Why not simply ``type='Pretrained'``: mmengine runs an init_cfg named ``'Pretrained'`` *after*
the children's ``init_weights`` and backbones skip their own re-initialisation (e.g.
mmpretrain's ``pos_embed``) only when ``init_cfg['type'] == 'Pretrained'``. Any other initializer
runs *before* the children. So this one first completes the children's initialisation itself,
then loads, then renames the module's ``init_cfg`` type to ``'Pretrained'``, which is what the
backbone checks right afterwards. Hence it must be the module's only init_cfg (a dict).
"""
from typing import Optional, Sequence

from mmengine.model import BaseModule, is_model_wrapper
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS

from ..runtime.compat import records_init_info
from .pretrained_loading import load_pretrained


@WEIGHT_INITIALIZERS.register_module(name='LoudPretrained')
class LoudPretrainedInit(PretrainedInit):
    """Load a checkpoint like ``PretrainedInit``, log the match and raise on a bad one.

    Args:
        checkpoint (str): Runner, published or backbone-only checkpoint.
        prefix (str, optional): Sub-module prefix to take and strip (``'backbone.'``).
        allow_missing (Sequence[str]): ``fnmatch`` patterns of parameters that are new in the
            downstream model and may be absent from the checkpoint.
        map_location (str): Defaults to ``'cpu'``.
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None,
                 allow_missing: Sequence[str] = (), map_location: str = 'cpu'):
        super().__init__(checkpoint, prefix=prefix, map_location=map_location)
        if isinstance(allow_missing, str):
            allow_missing = [allow_missing]
        self.allow_missing = list(allow_missing)
        self.report = None

    def __call__(self, module):
        _check_sole_init_cfg(module)
        _init_children(module)
        self.report = load_pretrained(module, self.checkpoint, self.prefix, self.allow_missing,
                                      self.map_location)
        if isinstance(getattr(module, 'init_cfg', None), dict):
            module.init_cfg = dict(module.init_cfg, type='Pretrained')
        if records_init_info(module):
            update_init_info(module, init_info=self._loaded_from())

    def _loaded_from(self) -> str:
        return f'{self.__class__.__name__}: load from {self.checkpoint}'


def _check_sole_init_cfg(module) -> None:
    cfg = getattr(module, 'init_cfg', None)
    if isinstance(cfg, (list, tuple)):
        raise ValueError(
            f'{type(module).__name__}.init_cfg is a list {cfg}; LoudPretrained must be the '
            'only init_cfg of the module it loads (a dict), since backbones skip their own '
            're-initialisation only for a single pre-trained init_cfg. Move other initialisers '
            'to the parent model or drop them.')


def _init_children(module) -> None:
    """What ``BaseModule.init_weights`` would do right after us: initialise the children (they
    are then marked initialised and skipped), so that nothing overwrites the loaded tensors."""
    for child in module.children():
        if is_model_wrapper(child) and not hasattr(child, 'init_weights'):
            child = child.module
        if hasattr(child, 'init_weights') and not getattr(child, 'is_init', False):
            child.init_weights()
            if isinstance(child, BaseModule) and records_init_info(child):
                update_init_info(child, init_info=f'Initialized by user-defined `init_weights` '
                                                  f'in {child.__class__.__name__} ')
