"""(Shifted) window attention over the visible tokens of a masked Swin stage map.

Only the visible tokens go through the per-token layers (norms, qkv, projection, MLP: the bulk of
a Swin block). For the attention itself their q / k / v are scattered into the stage's window
grid (after mmpretrain's cyclic shift), every window is attended with the relative position bias
of its slots, and masked or other-region slots are excluded as keys. Every shape depends only on
the batch size, the stage map and the number of visible tokens, all known on the host, so a
layout is built with device tensors alone: no host synchronisation and no Python work per token
in the training step.

This replaces GreenMIM's grouping (windows of visible tokens packed into groups by a
dynamic-programming / best-fit packing on the host): the result is the same, the attention core
runs over every window slot (docs/design.md lists the cost).
"""
from typing import NamedTuple, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.utils.attention import ShiftWindowMSA

__all__ = ['MASKED', 'WindowLayout', 'build_window_layout', 'masked_window_attention']

# Added to the logits of pairs that must not attend. Finite, so that a row with no allowed key
# (an empty slot, whose output is discarded) gives uniform weights instead of NaN in any dtype;
# exp(MASKED) is exactly 0 next to any real logit in float16, bfloat16 and float32.
MASKED = -1e4


class WindowLayout(NamedTuple):
    """Where the visible tokens of one (stage map, window, shift) and one mask go.

    ``slot``: (B * N,) slot of each token in the padded windows (``num_windows * window ** 2``
    slots, windows of sample b first). ``attn_mask``: (num_windows, 1, T, T) additive mask:
    0 where the query may attend the key, ``MASKED`` for empty key slots and for keys of another
    region of a shifted window.
    """
    slot: torch.Tensor
    attn_mask: torch.Tensor
    num_windows: int
    window: int


def build_window_layout(coords: torch.Tensor, hw_shape: Tuple[int, int], window: int,
                        shift: int) -> WindowLayout:
    """Lay out the tokens at ``coords`` ((B, N, 2) rows / columns on an ``hw_shape`` map,
    each sample the same ``N``) in the map's (shifted) windows.

    ``shift`` follows mmpretrain's ``ShiftWindowMSA``: the map is rolled by ``-shift`` and cut
    into windows; tokens that the roll brings into one window from different regions are kept
    apart by ``ShiftWindowMSA.get_attn_mask``.
    """
    batch, num, _ = coords.shape
    h, w = hw_shape
    if h % window or w % window:
        raise ValueError(f'build_window_layout: map {h}x{w} is not a multiple of the window '
                         f'{window}')
    rows, cols = (coords[..., 0] - shift) % h, (coords[..., 1] - shift) % w
    per_sample = (h // window) * (w // window)
    win = (rows // window) * (w // window) + cols // window
    sample = torch.arange(batch, device=coords.device).view(batch, 1)
    slot = ((sample * per_sample + win) * window + rows % window) * window + cols % window
    slot = slot.flatten()

    size = window * window
    occupied = torch.zeros(batch * per_sample * size, dtype=torch.bool, device=coords.device)
    occupied[slot] = True
    key_mask = torch.where(occupied, 0., MASKED).view(batch * per_sample, 1, 1, size)
    region = ShiftWindowMSA.get_attn_mask(hw_shape, window, shift, device=coords.device)
    if region is not None:  # (per_sample, T, T) with -100 between regions
        region = torch.where(region == 0, 0., MASKED).repeat(batch, 1, 1).unsqueeze(1)
        key_mask = key_mask + region
    return WindowLayout(slot, key_mask, batch * per_sample, window)


def masked_window_attention(w_msa, x: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
    """Window attention of the tokens ``x`` (B, N, C) with the weights of an mmpretrain
    ``WindowMSA`` (``qkv``, ``proj``, ``relative_position_bias_table`` / ``_index``, ``scale``).
    """
    batch, num, dims = x.shape
    heads, size = w_msa.num_heads, layout.window**2
    qkv = w_msa.qkv(x).reshape(batch * num, 3 * dims)
    padded = qkv.new_zeros(layout.num_windows * size, 3 * dims).index_copy(0, layout.slot, qkv)
    q, k, v = padded.view(layout.num_windows, size, 3, heads, dims // heads).permute(
        2, 0, 3, 1, 4)
    table = w_msa.relative_position_bias_table[w_msa.relative_position_index.view(-1)]
    bias = table.view(size, size, heads).permute(2, 0, 1).unsqueeze(0) + layout.attn_mask
    drop = w_msa.attn_drop.p if w_msa.training else 0.
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=bias.to(q.dtype), dropout_p=drop, scale=w_msa.scale)
    out = out.transpose(1, 2).reshape(layout.num_windows * size, dims)[layout.slot]
    return w_msa.proj_drop(w_msa.proj(out.view(batch, num, dims)))
