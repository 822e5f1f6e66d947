from typing import Dict, List

import torch
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils.windows import crop_windows

__all__ = ['LoMaR']


@MODELS.register_module()
class LoMaR(BaseSelfSupervisor):
    """LoMaR: Efficient Self-supervised Vision Pretraining with Local Masked Reconstruction.

    The backbone encodes K masked windows per image and records where each was cut; the targets
    are cut from the same (normalized) image at those offsets, so window k of image b is always
    scored against image b (the release paired image n with window n mod K). The head predicts
    each window patch's normalized pixels; the loss (``loss``) covers masked patches only.
    """

    def __init__(self, backbone: dict, head: dict, **kwargs):
        super().__init__(backbone=backbone, head=head, **kwargs)
        self._check_consistency()

    def _check_consistency(self) -> None:
        if self.head.patch_size != self.backbone.patch_size:
            raise ValueError(
                f'LoMaR: head.patch_size={self.head.patch_size} differs from '
                f'backbone.patch_size={self.backbone.patch_size}; set both to the same value')
        if self.head.embed_dims != self.backbone.embed_dims:
            raise ValueError(
                f'LoMaR: head.embed_dims={self.head.embed_dims} differs from the backbone width '
                f'{self.backbone.embed_dims}; set head.embed_dims={self.backbone.embed_dims}')

    def extract_feat(self, inputs: torch.Tensor):
        return self.backbone(inputs, mask=None)

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        latent, mask, offsets = self.backbone(inputs, mask=True)
        windows = crop_windows(inputs, offsets, self.backbone.window_size,
                               self.backbone.patch_size)
        return dict(loss=self.head.loss(latent, windows, mask))
