import math
from typing import Dict, List

import torch
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

__all__ = ['LocalMIM']


@MODELS.register_module()
class LocalMIM(BaseSelfSupervisor):
    """LocalMIM: Masked Image Modeling with Local Multi-Scale Reconstruction (CVPR 2023).

    The backbone returns its tapped features and the mask, the neck normalises each tap, and the
    head decodes each at its own scale and scores it on masked cells against the target
    generator's multi-scale targets. One loss per supervised layer (``loss_block1``, ...); their
    sum is the objective. The per-layer weights live in the head (``loss_weights``).
    """

    def __init__(self, backbone: dict, neck: dict, head: dict, target_generator: dict, **kwargs):
        super().__init__(backbone=backbone, neck=neck, head=head,
                         target_generator=target_generator, **kwargs)
        self._check_consistency()

    def _check_consistency(self) -> None:
        taps = len(self.backbone.out_indices)
        scales = len(self.head.scales)
        cells = len(self.target_generator.cell_sizes)
        if not taps == scales == cells:
            raise ValueError(
                f'LocalMIM: backbone.out_indices has {taps} taps, head.scales {scales} entries '
                f'and target_generator.cell_sizes {cells}; the three lists must have equal length')
        self._check_image_tiling()
        self._check_cell_sizes()

    def _check_image_tiling(self) -> None:
        """Every target cell must tile the input image (``backbone.img_size``) exactly: checked
        here rather than by the target generator at the first training iteration."""
        img_size = getattr(self.backbone, 'img_size', None)
        if img_size is None:
            return
        img_size = tuple(img_size) if isinstance(img_size, (tuple, list)) else (img_size, ) * 2
        for i, cell in enumerate(self.target_generator.cell_sizes):
            if cell > min(img_size):
                raise ValueError(
                    f'LocalMIM: target_generator.cell_sizes[{i}]={cell} px is larger than the '
                    f'image (backbone img_size={img_size}); use a smaller cell')
            if any(s % cell for s in img_size):
                step = math.lcm(*map(int, self.target_generator.cell_sizes))
                fits = tuple(max(step, s // step * step) for s in img_size)
                raise ValueError(
                    f'LocalMIM: backbone img_size={img_size} is not divisible by '
                    f'target_generator.cell_sizes[{i}]={cell} px: the target cells must tile '
                    f'the image. Use an input size divisible by {step}, e.g. img_size={fits} '
                    '(and the same crop size in the data pipeline)')

    def _check_cell_sizes(self) -> None:
        """Each target cell must be the tap's token stride / its scale."""
        strides = getattr(self.backbone, 'tap_strides', None)
        if strides is None:  # a backbone that does not tell its token strides: nothing to check
            return
        cells = list(self.target_generator.cell_sizes)
        expected = [s / k for s, k in zip(strides, self.head.scales)]
        if expected != cells:
            shown = f'[{", ".join(f"{c:g}" for c in expected)}]'
            raise ValueError(
                f'LocalMIM: taps {self.backbone.tap_names} have {list(strides)}-px tokens and '
                f'head scales {self.head.scales}, so the target cells are {shown} px, but '
                f'target_generator.cell_sizes={cells}; set it to {shown}')

    def extract_feat(self, inputs: torch.Tensor):
        return self.backbone(inputs, mask=None)

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        feats, mask, _ = self.backbone(inputs, mask=True)
        targets = self.target_generator(inputs)
        losses = self.head.loss(self.neck(feats), targets, mask)
        return {f'loss_{name}': loss for name, loss in zip(self.backbone.tap_names, losses)}
