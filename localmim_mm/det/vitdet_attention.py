"""ViTDet's attention: windowed or global, with decomposed relative position bias, on a 2-D map.

``WindowedRelPosAttention`` is mmpretrain's ``MultiheadAttention`` (same ``qkv`` / ``proj``
parameters, so a pre-trained ViT loads unchanged) applied to a (B, H, W, C) map either in
non-overlapping ``window_size`` x ``window_size`` windows or over the whole map, with the
decomposed relative position bias of MViTv2 / ViTDet: the logit of query ``i`` and key ``j`` gets
``q_i . R_h[y_i - y_j] + q_i . R_w[x_i - x_j]`` from two learnable tables.

How the bias is applied: it is folded into the query-key product instead of being materialised
as an (N, N) tensor per head. The query gets the scaled ``q`` plus its ``Kh + Kw`` bias values,
the key gets ``k`` plus one-hot codes of its row and column, so that ``q' . k'`` is exactly the
biased logit; a key that is window padding gets one more column that adds ``_PAD_LOGIT`` (its
softmax weight is exactly 0 in float32, so padding never reaches a real token). Then
``F.scaled_dot_product_attention`` runs on (q', k', v) with the value zero-padded to the same width,
which keeps the fused kernels (flash / memory-efficient, CPU and GPU) eligible, so no block stores
an (N, N) tensor (a materialised bias would be 12 x 4096 x 4096 per image in each global block of
ViTDet-B at 1024 px). The price is a wider head, most in the global blocks (64 + 128 channels at
1024 px), so more activation memory and attention FLOPs per block than a plain fused-attention
block.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.backbones.vit_sam import window_partition, window_unpartition
from mmpretrain.models.utils import MultiheadAttention

__all__ = ['WindowedRelPosAttention', 'relative_position_table']

# Logit added for padded keys: exp(-1e4 + any realistic logit) is 0 in float32, and -1e4 is
# representable in float16 / bfloat16.
_PAD_LOGIT = -1e4
_WIDTH_ALIGN = 8  # fused attention kernels want head widths that are multiples of 8


def relative_position_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """``(size, size, C)`` tensor ``R`` with ``R[i, j] = table[i - j + size - 1]``.

    ``table`` has ``2 * s - 1`` rows for the offsets ``-(s-1) .. s-1`` of the grid it was sized for;
    for another ``size`` it is linearly resampled to ``2 * size - 1`` rows (as in ViTDet).
    """
    rows = 2 * size - 1
    if table.shape[0] != rows:
        table = F.interpolate(table.t()[None], size=rows, mode='linear')[0].t()
    position = torch.arange(size, device=table.device)
    return table[position[:, None] - position[None, :] + size - 1]


class WindowedRelPosAttention(MultiheadAttention):
    """Multi-head self-attention on a (B, H, W, C) map, windowed or global, with ViTDet's
    decomposed relative position bias.

    Args:
        embed_dims (int): Channels of the map.
        num_heads (int): Attention heads.
        window_size (int): Side of the attention windows; 0 means global attention. A map whose
            sides are not multiples of it is zero-padded to full windows; the padded keys are
            masked out.
        rel_pos_size (Tuple[int, int]): Grid (rows, cols) the tables of a global block are sized
            for (the detection input's patch grid, e.g. 64 x 64 at 1024 px); other grids use
            resampled tables. Window blocks size theirs for the window.
        **kwargs: ``MultiheadAttention`` arguments (``qkv_bias``, ``attn_drop``, ``proj_drop``,
            ``dropout_layer`` for drop path, ...).

    The tables ``rel_pos_h`` / ``rel_pos_w`` start at zero, so a freshly built block computes
    exactly the pre-trained ViT's attention on its window.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int = 0,
                 rel_pos_size: Tuple[int, int] = (14, 14),
                 **kwargs) -> None:
        super().__init__(embed_dims, num_heads, **kwargs)
        if window_size < 0:
            raise ValueError(f'WindowedRelPosAttention: window_size={window_size} must be >= 0 '
                             '(0 = global attention)')
        if self.v_shortcut or self.input_dims != self.embed_dims:
            raise ValueError('WindowedRelPosAttention: v_shortcut / input_dims are not supported')
        self.window_size = window_size
        rows, cols = (window_size, window_size) if window_size else tuple(rel_pos_size)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * rows - 1, self.head_dims))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * cols - 1, self.head_dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, H, W, C) -> (B, H, W, C)."""
        batch, height, width, _ = x.shape
        qkv = self.qkv(x)  # on the real tokens only: windows are padded after the projection
        if self.window_size:
            qkv, padded_hw = window_partition(qkv, self.window_size)
        out = self._attend(qkv, self._padding_flags(batch, height, width, x.device))
        if self.window_size:
            out = window_unpartition(out, self.window_size, padded_hw, (height, width))
        out = self.proj(out)
        return self.out_drop(self.gamma1(self.proj_drop(out)))

    def _padding_flags(self, batch: int, height: int, width: int,
                       device: torch.device) -> Optional[torch.Tensor]:
        """(B * windows, window_size**2) flags, 1 for padded positions; None without padding."""
        size = self.window_size
        if not size or (height % size == 0 and width % size == 0):
            return None
        windows, _ = window_partition(torch.ones(1, height, width, 1, device=device), size)
        return (windows == 0).flatten(1).float().repeat(batch, 1)  # padding comes out as 0

    def _attend(self, qkv: torch.Tensor, pad_flags: Optional[torch.Tensor]) -> torch.Tensor:
        """Attention over the tokens of each (n, h, w, 3C) window of q, k, v (or of the whole
        map, n = B)."""
        n, h, w, _ = qkv.shape
        qkv = qkv.reshape(n, h * w, 3, self.num_heads, self.head_dims)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (n, heads, h*w, head_dims)
        query, key = self._fold_rel_pos(q, k, h, w, pad_flags)
        width = query.shape[-1]
        value = F.pad(v, (0, width - v.shape[-1]))
        out = F.scaled_dot_product_attention(
            query, key, value, dropout_p=self.attn_drop if self.training else 0., scale=1.0)
        out = out[..., :self.head_dims].transpose(1, 2)
        return out.reshape(n, h, w, self.embed_dims)

    def _fold_rel_pos(self, q: torch.Tensor, k: torch.Tensor, h: int, w: int,
                      pad_flags: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(q', k') with ``q'_i . k'_j = scale * q_i . k_j + rel_h[i, y_j] + rel_w[i, x_j]``
        (+ ``_PAD_LOGIT`` for padded keys), widths rounded up to a multiple of 8."""
        n, heads, tokens, _ = q.shape
        grid_q = q.reshape(n, heads, h, w, self.head_dims)
        rel_h = torch.einsum('nayxc,ykc->nayxk', grid_q,
                             relative_position_table(self.rel_pos_h, h).to(q.dtype))
        rel_w = torch.einsum('nayxc,xkc->nayxk', grid_q,
                             relative_position_table(self.rel_pos_w, w).to(q.dtype))
        token = torch.arange(tokens, device=q.device)
        row_code = torch.eye(h, dtype=q.dtype, device=q.device)[token // w]  # (tokens, h)
        col_code = torch.eye(w, dtype=q.dtype, device=q.device)[token % w]
        query = [q * self.head_dims**-0.5, rel_h.reshape(n, heads, tokens, h),
                 rel_w.reshape(n, heads, tokens, w)]
        key = [k, row_code.expand(n, heads, tokens, h), col_code.expand(n, heads, tokens, w)]
        if pad_flags is not None:
            query.append(q.new_full((n, heads, tokens, 1), _PAD_LOGIT))
            key.append(pad_flags.to(q.dtype)[:, None, :, None].expand(n, heads, tokens, 1))
        extra = -(self.head_dims + h + w + (pad_flags is not None)) % _WIDTH_ALIGN
        if extra:
            zeros = q.new_zeros(n, heads, tokens, extra)
            query.append(zeros)
            key.append(zeros)
        return torch.cat(query, -1), torch.cat(key, -1)
