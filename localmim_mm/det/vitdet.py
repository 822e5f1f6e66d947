"""ViTDet's plain-ViT backbone (Li et al., 2022) that loads mmpretrain / LocalMIM ViT checkpoints.

mmdet's ``projects/ViTDet`` is not in the mmdet wheel and its ViT has its own parameter names; this
backbone is mmpretrain's ``VisionTransformer`` (same ``patch_embed`` / ``pos_embed`` /
``layers.*`` keys, same ``get_layer_depth`` for layer-wise lr decay) whose blocks attend in
windows, except a few global ones, with ViTDet's decomposed relative position bias.
"""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.registry import MODELS
from mmpretrain.models import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed, to_2tuple
from torch.utils.checkpoint import checkpoint

from .vitdet_attention import WindowedRelPosAttention

__all__ = ['ViTDet']

# ViTDet's global blocks: the last block of each quarter of the depth.
_GLOBAL_BLOCKS = {'b': (2, 5, 8, 11), 'base': (2, 5, 8, 11), 'l': (5, 11, 17, 23),
                  'large': (5, 11, 17, 23), 'h': (7, 15, 23, 31), 'huge': (7, 15, 23, 31)}


@MODELS.register_module()
class ViTDet(VisionTransformer):
    """Plain ViT with windowed + global attention and a (B, C, H/p, W/p) output, as in ViTDet.

    Differences from mmpretrain's ``VisionTransformer`` (whose checkpoints load unchanged):

    * every block attends in ``window_size`` x ``window_size`` windows (the map zero-padded to
      whole windows, the padding masked out of the keys), except ``global_attn_indexes``;
    * each block's attention has the decomposed relative position tables ``rel_pos_h`` /
      ``rel_pos_w`` (new, zero-initialised: list ``'layers.*.attn.rel_pos_?'`` in
      ``LoudPretrained``'s ``allow_missing``);
    * no class token (a checkpoint's ``cls_token`` is reported unused and the class entry of its
      ``pos_embed`` dropped); the absolute position embedding keeps the pre-training grid
      (``img_size``) and is resized bicubically to each input's grid;
    * the output is the (B, C, H, W) map of the ``out_indices`` blocks (no final norm), for
      ``SimpleFeaturePyramid``;
    * ``with_cp`` recomputes each block in the backward pass (gradient checkpointing).

    Args:
        arch (str | dict): As ``VisionTransformer`` ('base', 'large', 'huge' or a dict).
        img_size (int): The *pre-training* input size (224): sizes ``pos_embed`` to load the
            checkpoint's unchanged.
        patch_size (int): Defaults to 16.
        input_size (int | tuple): The detection input size (1024): the global blocks' relative
            position tables are sized for its patch grid (other inputs resample them).
        window_size (int): Attention window side in patches. Defaults to 14 (the 224-px grid).
        global_attn_indexes (Sequence[int], optional): Blocks with global attention. Defaults to
            ViTDet's (B: 2, 5, 8, 11; L: 5, 11, 17, 23; H: 7, 15, 23, 31); required for a dict arch.
        out_indices (Sequence[int] | int): Blocks whose output map is returned. Defaults to -1.
        drop_path_rate (float): Stochastic depth, linearly increasing over the blocks.
        with_cp (bool): Gradient checkpointing of every block. Defaults to False.
        **kwargs: Other ``VisionTransformer`` arguments (``qkv_bias``, ``norm_cfg``,
            ``drop_rate``, ``frozen_stages``, ``interpolate_mode``, ``patch_cfg``, ``init_cfg``).
    """

    def __init__(self,
                 arch='base',
                 img_size: int = 224,
                 patch_size: int = 16,
                 input_size=1024,
                 window_size: int = 14,
                 global_attn_indexes: Optional[Sequence[int]] = None,
                 out_indices=-1,
                 drop_path_rate: float = 0.,
                 with_cp: bool = False,
                 **kwargs) -> None:
        for fixed in ('out_type', 'with_cls_token', 'final_norm', 'layer_cfgs', 'pre_norm'):
            if fixed in kwargs:
                raise ValueError(f'ViTDet: {fixed}={kwargs[fixed]!r} cannot be set: the backbone '
                                 'outputs the (B, C, H, W) maps of out_indices, without class '
                                 'token, final norm or pre-norm')
        super().__init__(arch=arch, img_size=img_size, patch_size=patch_size,
                         out_indices=out_indices, drop_path_rate=drop_path_rate,
                         out_type='featmap', with_cls_token=False, final_norm=False, **kwargs)
        self.window_size = window_size
        self.global_attn_indexes = self._check_global_blocks(arch, global_attn_indexes)
        self.with_cp = with_cp
        self._make_attention_windowed(input_size, patch_size, drop_path_rate,
                                      kwargs.get('qkv_bias', True), kwargs.get('drop_rate', 0.))
        # The parent froze its first `frozen_stages` blocks (-1: none) before their attention
        # modules were replaced: freeze them again.
        for block in self.layers[:max(self.frozen_stages, 0)]:
            block.eval()
            block.requires_grad_(False)

    def _check_global_blocks(self, arch, indexes: Optional[Sequence[int]]) -> Tuple[int, ...]:
        if indexes is None:
            if not isinstance(arch, str) or arch.lower() not in _GLOBAL_BLOCKS:
                raise ValueError(f'ViTDet: arch={arch!r} has no default global_attn_indexes; '
                                 'pass them (e.g. the last block of each quarter of the depth)')
            indexes = _GLOBAL_BLOCKS[arch.lower()]
        bad = [i for i in indexes if not 0 <= i < self.num_layers]
        if bad:
            raise ValueError(f'ViTDet: global_attn_indexes {bad} are not blocks of this '
                             f'{self.num_layers}-block ViT (0 .. {self.num_layers - 1})')
        if self.window_size < 1 and len(set(indexes)) < self.num_layers:
            raise ValueError(f'ViTDet: window_size={self.window_size} must be >= 1 for the '
                             'windowed blocks')
        return tuple(sorted(set(indexes)))

    def _make_attention_windowed(self, input_size, patch_size: int, drop_path_rate: float,
                                 qkv_bias: bool, drop_rate: float) -> None:
        """Swap each block's ``MultiheadAttention`` for the windowed / global one (same
        ``qkv`` / ``proj`` names, so the checkpoint keys stay those of the plain ViT)."""
        input_size, patch = to_2tuple(input_size), to_2tuple(patch_size)
        grid = (input_size[0] // patch[0], input_size[1] // patch[1])
        drop_path = np.linspace(0, drop_path_rate, self.num_layers)
        for i, layer in enumerate(self.layers):
            plain = layer.attn
            layer.attn = WindowedRelPosAttention(
                self.embed_dims, plain.num_heads,
                window_size=0 if i in self.global_attn_indexes else self.window_size,
                rel_pos_size=grid, qkv_bias=qkv_bias, attn_drop=plain.attn_drop,
                proj_drop=drop_rate, dropout_layer=dict(type='DropPath',
                                                        drop_prob=float(drop_path[i])))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        batch = x.shape[0]
        x, grid = self.patch_embed(x)
        x = x + resize_pos_embed(self.pos_embed, self.patch_resolution, grid,
                                 mode=self.interpolate_mode, num_extra_tokens=0)
        x = self.drop_after_pos(x).reshape(batch, *grid, self.embed_dims)
        outs = []
        for i, layer in enumerate(self.layers):
            if self.with_cp and x.requires_grad:
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
            if i in self.out_indices:
                outs.append(x.permute(0, 3, 1, 2).contiguous())
        return tuple(outs)
