from typing import Sequence, Union

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import nn

from mmpretrain.registry import MODELS

__all__ = ['MultiLayerNeck']


@MODELS.register_module()
class MultiLayerNeck(BaseModule):
    """One LayerNorm per tapped layer (LocalMIM has no shared final norm).

    Args:
        in_channels (int | Sequence[int]): Width of each tap; an int is used for every tap.
        num_layers (int): Number of taps (needed when ``in_channels`` is an int).
        norm_cfg (dict): Norm of each tap. Defaults to ``LN`` with ``eps=1e-6``.
    """

    def __init__(self, in_channels: Union[int, Sequence[int]], num_layers: int = None,
                 norm_cfg: dict = dict(type='LN', eps=1e-6), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(in_channels, int):
            if num_layers is None:
                raise ValueError('MultiLayerNeck: give num_layers when in_channels is an int')
            in_channels = [in_channels] * num_layers
        elif num_layers is not None and num_layers != len(in_channels):
            raise ValueError(f'MultiLayerNeck: num_layers={num_layers} does not match '
                             f'in_channels={list(in_channels)}')
        self.in_channels = list(in_channels)
        self.norms = nn.ModuleList(build_norm_layer(norm_cfg, c)[1] for c in self.in_channels)

    def forward(self, feats: Sequence[torch.Tensor]):
        if len(feats) != len(self.norms):
            raise ValueError(f'MultiLayerNeck got {len(feats)} taps but has {len(self.norms)} '
                             'norms; make num_layers equal the backbone out_indices length')
        return [norm(x) for norm, x in zip(self.norms, feats)]
