"""Attention with a learnable 2-D relative position bias, for LoMaR's encoder.

The LoMaR release encodes position with iRPE's contextual relative position encoding on the keys,
a CUDA-only op. Here each attention layer instead learns one bias per head and per 2-D offset
(BEiT / Swin style), added to the attention logits: pure PyTorch, any device.
"""
from typing import Tuple

import torch
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.vision_transformer import TransformerEncoderLayer
from mmpretrain.models.utils import MultiheadAttention
from torch import nn

__all__ = ['num_relative_positions', 'relative_position_index', 'RelPosMultiheadAttention',
           'RelPosTransformerEncoderLayer']


def num_relative_positions(max_offset: int) -> int:
    """Table rows: every (dy, dx) in [-m, m]^2, then cls->patch, patch->cls and cls->cls."""
    return (2 * max_offset + 1) ** 2 + 3


def relative_position_index(grid: Tuple[int, int], max_offset: int,
                            device=None) -> torch.Tensor:
    """(1 + h*w, 1 + h*w) table rows for a cls token followed by an h x w raster of patches.

    Patch i attending to patch j reads row ``(dy + m) * (2m + 1) + (dx + m)`` with
    ``(dy, dx) = pos_i - pos_j`` clipped to ``[-m, m]`` (offsets farther than the pre-training
    window share the edge entry). The cls token has its own three rows.
    """
    h, w = grid
    side = 2 * max_offset + 1
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                            indexing='ij')
    pos = torch.stack([ys.flatten(), xs.flatten()], dim=-1)                   # (hw, 2)
    delta = (pos[:, None, :] - pos[None, :, :]).clamp(-max_offset, max_offset) + max_offset
    patch_index = delta[..., 0] * side + delta[..., 1]
    index = torch.empty(h * w + 1, h * w + 1, dtype=torch.long, device=device)
    index[1:, 1:] = patch_index
    index[0, 1:] = side * side
    index[1:, 0] = side * side + 1
    index[0, 0] = side * side + 2
    return index


class RelPosMultiheadAttention(MultiheadAttention):
    """``mmpretrain`` multi-head attention plus a per-head relative position bias.

    Args:
        max_offset (int): Largest offset per axis with its own bias (LoMaR: window size - 1).
        Others as ``mmpretrain.models.utils.MultiheadAttention``.
    """

    def __init__(self, embed_dims: int, num_heads: int, max_offset: int, **kwargs):
        super().__init__(embed_dims, num_heads, **kwargs)
        self.max_offset = max_offset
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros(num_relative_positions(max_offset), num_heads))

    def init_weights(self):
        super().init_weights()
        trunc_normal_(self.relative_position_bias_table, std=.02)

    def relative_position_bias(self, index: torch.Tensor) -> torch.Tensor:
        """(num_heads, N, N) bias for the (N, N) table rows ``index``."""
        return self.relative_position_bias_table[index].permute(2, 0, 1)

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads,
                                  self.head_dims).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.relative_position_bias(index).unsqueeze(0).to(q.dtype)
        attn_drop = self.attn_drop if self.training else 0.
        x = self.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=attn_drop)
        x = x.transpose(1, 2).reshape(batch, length, self.embed_dims)
        x = self.proj(x)
        return self.out_drop(self.gamma1(self.proj_drop(x)))


class RelPosTransformerEncoderLayer(TransformerEncoderLayer):
    """``mmpretrain`` ViT encoder layer whose attention adds a relative position bias.

    Parameter names are those of ``TransformerEncoderLayer`` plus
    ``attn.relative_position_bias_table``, so the other weights load into a plain ViT.
    """

    def __init__(self, embed_dims: int, num_heads: int, feedforward_channels: int,
                 max_offset: int, drop_rate: float = 0., attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0., qkv_bias: bool = True,
                 layer_scale_init_value: float = 0., **kwargs):
        super().__init__(embed_dims, num_heads, feedforward_channels,
                         layer_scale_init_value=layer_scale_init_value, drop_rate=drop_rate,
                         attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate,
                         qkv_bias=qkv_bias, **kwargs)
        self.attn = RelPosMultiheadAttention(
            embed_dims, num_heads, max_offset, attn_drop=attn_drop_rate, proj_drop=drop_rate,
            dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate), qkv_bias=qkv_bias,
            layer_scale_init_value=layer_scale_init_value)

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), index)
        return self.ffn(self.ln2(x), identity=x)
