"""ViTDet's simple feature pyramid for a plain (columnar) ViT, as an mmdet neck."""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule

__all__ = ['SimpleFeaturePyramid']

_SCALES = (4.0, 2.0, 1.0, 0.5, 0.25)


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """Multi-scale maps from the single stride-``p`` map of a plain ViT (Li et al., ViTDet).

    Each scale factor of the last block's map is made by: 4 -> two stride-2 deconvs with a norm and
    GELU between; 2 -> one deconv; 1 -> identity; 0.5 / 0.25 -> max pool; each followed by a 1x1
    and a 3x3 conv (with ``norm_cfg``) to ``out_channels``. Extra levels beyond the scale factors
    (``num_outs``) are stride-2 max pools of the last one, as in mmdet's ``FPN``.

    Args:
        in_channels (int): Channels of the backbone map (ViT embed dims).
        out_channels (int): Channels of every output level.
        scale_factors (Sequence[float]): Decreasing subset of (4, 2, 1, 0.5, 0.25). ViT /16:
            (4, 2, 1, 0.5) gives strides 4..32; a /8 ViT uses (2, 1, 0.5, 0.25).
        num_outs (int): Number of outputs, >= len(scale_factors). Defaults to 5 (RPN on P2-P6).
        norm_cfg (dict): Norm of the deconv stage and of the convs. Defaults to ``LN2d``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
                 num_outs: int = 5,
                 norm_cfg: dict = dict(type='LN2d', eps=1e-6),
                 init_cfg=dict(type='Xavier', layer=['Conv2d', 'ConvTranspose2d'],
                               distribution='uniform')) -> None:
        super().__init__(init_cfg=init_cfg)
        scale_factors = [float(s) for s in scale_factors]
        bad = [s for s in scale_factors if s not in _SCALES]
        if bad or not scale_factors or scale_factors != sorted(scale_factors, reverse=True):
            raise ValueError(f'SimpleFeaturePyramid: scale_factors={scale_factors} must be a '
                             f'decreasing, non-empty subset of {_SCALES}')
        if num_outs < len(scale_factors):
            raise ValueError(f'SimpleFeaturePyramid: num_outs={num_outs} is smaller than the '
                             f'{len(scale_factors)} scale factors; raise it')
        if in_channels % 4:
            raise ValueError(f'SimpleFeaturePyramid: in_channels={in_channels} must be divisible '
                             'by 4 (the x4 stage halves the channels twice)')
        self.scale_factors = scale_factors
        self.num_outs = num_outs
        self.stages = nn.ModuleList()
        for scale in scale_factors:
            rescale, width = self._rescale(scale, in_channels, norm_cfg)
            self.stages.append(nn.Sequential(
                rescale,
                ConvModule(width, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None),
                ConvModule(out_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg,
                           act_cfg=None)))

    @staticmethod
    def _rescale(scale: float, channels: int, norm_cfg: dict) -> Tuple[nn.Module, int]:
        if scale == 4.0:
            return nn.Sequential(
                nn.ConvTranspose2d(channels, channels // 2, 2, stride=2),
                build_norm_layer(norm_cfg, channels // 2)[1],
                nn.GELU(),
                nn.ConvTranspose2d(channels // 2, channels // 4, 2, stride=2)), channels // 4
        if scale == 2.0:
            return nn.ConvTranspose2d(channels, channels // 2, 2, stride=2), channels // 2
        if scale == 1.0:
            return nn.Identity(), channels
        kernel = int(1 / scale)
        return nn.MaxPool2d(kernel, stride=kernel), channels

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """``inputs``: the backbone's outputs; the last one, (B, C, H, W), is used."""
        x = inputs[-1]
        outs: List[torch.Tensor] = [stage(x) for stage in self.stages]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
