"""(Shifted) window attention over the visible tokens of a masked Swin stage map.

Only the visible tokens go through the per-token layers (norms, qkv, projection, MLP: the bulk of
a Swin block). The attention itself is computed one of two ways, whichever does less work for the
stage (both give mmpretrain's ``ShiftWindowMSA`` on the full map with the masked keys excluded):

* ``'windows'``: q / k / v are scattered into the stage's window grid (after mmpretrain's cyclic
  shift) and every window is attended over its ``T = window ** 2`` slots, empty slots excluded as
  keys: ``num_windows * T ** 2`` pairs per sample. Cheaper for large maps (Swin-B stage 1).
* ``'tokens'``: every visible token of a sample attends every other one, keys outside its window
  (or its region of a shifted window) excluded: ``N ** 2`` pairs for ``N`` visible tokens.
  Cheaper for maps of a few windows (Swin-B at 224 px: stages 2-4, 22 of its 24 blocks).

Every shape depends only on the batch size, the stage map and the number of visible tokens, all
known on the host, so a layout is built with device tensors alone: no host synchronisation and no
Python work per token in the training step.

This replaces GreenMIM's grouping (windows of visible tokens packed into groups by a
dynamic-programming / best-fit packing on the host): the result is the same, the attention core
computes some pairs that the packing would skip (docs/design.md lists the cost).
"""
from typing import NamedTuple, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.utils.attention import ShiftWindowMSA

__all__ = ['MASKED', 'LAYOUT_MODES', 'WindowLayout', 'build_window_layout',
           'masked_window_attention']

# Added to the logits of pairs that must not attend. Finite, so that a row with no allowed key
# (an empty slot, whose output is discarded) gives uniform weights instead of NaN in any dtype;
# exp(MASKED) is exactly 0 next to any real logit in float16, bfloat16 and float32.
MASKED = -1e4
LAYOUT_MODES = ('auto', 'windows', 'tokens')


class WindowLayout(NamedTuple):
    """Where the visible tokens of one (stage map, window, shift) and one mask go.

    ``mode``: ``'windows'`` or ``'tokens'`` (module docstring). ``in_window``: (B, N) slot of each
    token within its window (row-major, as ``WindowMSA.relative_position_index``).
    ``slot``: ``'windows'`` only, (B * N,) slot of each token in the padded windows
    (``num_windows * T`` slots, windows of sample b first). ``attn_mask``: additive, 0 where the
    query may attend the key, ``MASKED`` elsewhere: (num_windows, 1, T, T) for ``'windows'``
    (empty key slots, keys of another region of a shifted window), (B, 1, N, N) for ``'tokens'``
    (keys of another window or region).
    """
    mode: str
    in_window: torch.Tensor
    slot: torch.Tensor
    attn_mask: torch.Tensor
    num_windows: int
    window: int


def build_window_layout(coords: torch.Tensor, hw_shape: Tuple[int, int], window: int,
                        shift: int, mode: str = 'auto') -> WindowLayout:
    """Lay out the tokens at ``coords`` ((B, N, 2) rows / columns on an ``hw_shape`` map,
    each sample the same ``N``) in the map's (shifted) windows.

    ``shift`` follows mmpretrain's ``ShiftWindowMSA``: the map is rolled by ``-shift`` and cut
    into windows; tokens that the roll brings into one window from different regions are kept
    apart by ``ShiftWindowMSA.get_attn_mask``. ``mode='auto'`` picks ``'tokens'`` when
    ``N ** 2 < windows per sample * T ** 2``.
    """
    if mode not in LAYOUT_MODES:
        raise ValueError(f'build_window_layout: mode={mode!r}; choose one of {LAYOUT_MODES}')
    batch, num, _ = coords.shape
    h, w = hw_shape
    if h % window or w % window:
        raise ValueError(f'build_window_layout: map {h}x{w} is not a multiple of the window '
                         f'{window}')
    rows, cols = (coords[..., 0] - shift) % h, (coords[..., 1] - shift) % w
    per_sample, size = (h // window) * (w // window), window * window
    win = (rows // window) * (w // window) + cols // window
    in_window = (rows % window) * window + cols % window
    # (per_sample, T, T) with -100 between regions of a shifted window, or None
    region = ShiftWindowMSA.get_attn_mask(hw_shape, window, shift, device=coords.device)
    if mode == 'auto':
        mode = 'tokens' if num * num < per_sample * size * size else 'windows'
    if mode == 'tokens':
        allowed = win[:, :, None] == win[:, None, :]
        if region is not None:
            allowed &= region[win[:, :, None], in_window[:, :, None], in_window[:, None, :]] == 0
        attn_mask = torch.where(allowed, 0., MASKED).unsqueeze(1)
        return WindowLayout(mode, in_window, None, attn_mask, batch * per_sample, window)

    sample = torch.arange(batch, device=coords.device).view(batch, 1)
    slot = ((sample * per_sample + win) * size + in_window).flatten()
    occupied = torch.zeros(batch * per_sample * size, dtype=torch.bool, device=coords.device)
    occupied[slot] = True
    key_mask = torch.where(occupied, 0., MASKED).view(batch * per_sample, 1, 1, size)
    if region is not None:
        region = torch.where(region == 0, 0., MASKED).repeat(batch, 1, 1).unsqueeze(1)
        key_mask = key_mask + region
    return WindowLayout(mode, in_window, slot, key_mask, batch * per_sample, window)


def masked_window_attention(w_msa, x: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
    """Window attention of the tokens ``x`` (B, N, C) with the weights of an mmpretrain
    ``WindowMSA`` (``qkv``, ``proj``, ``relative_position_bias_table`` / ``_index``, ``scale``).
    """
    batch, num, dims = x.shape
    heads = w_msa.num_heads
    qkv = w_msa.qkv(x)
    table = w_msa.relative_position_bias_table
    if layout.mode == 'tokens':
        index = w_msa.relative_position_index[layout.in_window[:, :, None],
                                              layout.in_window[:, None, :]]
        bias = table[index].permute(0, 3, 1, 2) + layout.attn_mask  # (B, heads, N, N)
        out = _attend(w_msa, qkv.view(batch, num, 3 * dims), bias)
        return w_msa.proj_drop(w_msa.proj(out.reshape(batch, num, dims)))

    size = layout.window**2
    padded = qkv.new_zeros(layout.num_windows * size, 3 * dims).index_copy(
        0, layout.slot, qkv.reshape(batch * num, 3 * dims))
    index = w_msa.relative_position_index.view(-1)
    bias = table[index].view(size, size, heads).permute(2, 0, 1).unsqueeze(0) + layout.attn_mask
    out = _attend(w_msa, padded.view(layout.num_windows, size, 3 * dims), bias)
    out = out.reshape(layout.num_windows * size, dims)[layout.slot]
    return w_msa.proj_drop(w_msa.proj(out.view(batch, num, dims)))


def _attend(w_msa, qkv: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Attention within each of the G groups of ``qkv`` (G, L, 3 * C) with the additive ``bias``
    (G or 1, heads, L, L): (G, L, C)."""
    groups, length, dims = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
    heads = w_msa.num_heads
    q, k, v = qkv.view(groups, length, 3, heads, dims // heads).permute(2, 0, 3, 1, 4)
    drop = w_msa.attn_drop.p if w_msa.training else 0.
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=bias.to(q.dtype), dropout_p=drop, scale=w_msa.scale)
    return out.transpose(1, 2).reshape(groups, length, dims)
