"""Group window attention: (shifted) window attention over a sparse set of visible tokens.

The visible tokens of every sample are split by the (shifted) window they fall in; the windows,
of any sample, are packed into groups of at most ``window ** 2`` tokens (best-fit decreasing) and
each group is attended as one sequence whose additive mask only lets a token see the tokens of its
own window. The relative position bias is indexed by the tokens' true coordinates on the stage map.

A shifted window follows mmpretrain's ``ShiftWindowMSA`` (cyclic shift by ``shift`` with the
wrapped-around regions kept apart): in the unshifted frame the windows start at ``-(window -
shift)``, so a token at row ``r`` lies in window row ``(r + window - shift) // window``. Regions
that the cyclic shift would put into one window but mask apart are separate windows here.
"""
import math
from typing import List, NamedTuple, Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['WindowLayout', 'pack_windows', 'build_window_layout', 'group_window_attention']


class WindowLayout(NamedTuple):
    """Where each token goes for one (stage map, window, shift) and one mask.

    ``index``: (G * T,) token of each group slot, ``num_tokens`` for an empty slot.
    ``slot``: (num_tokens,) group slot of each token (the inverse of ``index``).
    ``rel_index``: (G, T, T) row of the relative-position table per pair of slots; pairs in
    different windows point at one row past the table (the caller appends a ``-inf`` row).
    """
    index: torch.Tensor
    slot: torch.Tensor
    rel_index: torch.Tensor
    num_groups: int
    group_size: int


def pack_windows(counts: np.ndarray, capacity: int) -> Tuple[np.ndarray, np.ndarray, int]:
    """Pack windows of ``counts`` tokens into groups of ``capacity`` slots (best-fit decreasing).

    Windows are placed from the largest down, each into the open group with the least room that
    still fits it (a new group when none does). Items of one size are placed together, so the
    loop runs over at most ``capacity`` sizes and room levels, whatever the number of windows.

    Returns ``group`` and ``offset`` (first slot) per window (-1 for empty windows) and the number
    of groups.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size and counts.max() > capacity:
        raise ValueError(f'pack_windows: a window holds {counts.max()} tokens, more than the '
                         f'group capacity {capacity}')
    group = np.full(counts.shape, -1, dtype=np.int64)
    offset = np.full(counts.shape, -1, dtype=np.int64)
    open_by_room: List[List[int]] = [[] for _ in range(capacity + 1)]
    num_groups = 0
    for size in range(capacity, 0, -1):
        items = np.flatnonzero(counts == size)
        done = 0
        while done < len(items):
            room = next((r for r in range(size, capacity) if open_by_room[r]), None)
            if room is None:  # open new groups, each filled with as many items as fit
                n = len(items) - done
                per_group = capacity // size
                rank = np.arange(n)
                group[items[done:]] = num_groups + rank // per_group
                offset[items[done:]] = (rank % per_group) * size
                new = -(-n // per_group)
                for g in range(new):
                    used = min(per_group, n - g * per_group) * size
                    if capacity - used:
                        open_by_room[capacity - used].append(num_groups + g)
                num_groups += new
                done = len(items)
            else:
                take = min(len(items) - done, len(open_by_room[room]))
                ids = open_by_room[room][:take]
                del open_by_room[room][:take]
                group[items[done:done + take]] = ids
                offset[items[done:done + take]] = capacity - room
                if room - size:
                    open_by_room[room - size].extend(ids)
                done += take
    return group, offset, num_groups


def build_window_layout(coords: torch.Tensor, hw_shape: Tuple[int, int], window: int,
                        shift: int) -> WindowLayout:
    """Group the tokens at ``coords`` ((B, N, 2) rows / columns on an ``hw_shape`` map).

    Every sample must have the same number ``N`` of tokens; windows never mix samples.
    """
    batch, num, _ = coords.shape
    device = coords.device
    h, w = hw_shape
    start = (window - shift) % window
    rows, cols = math.ceil((h + start) / window), math.ceil((w + start) / window)
    r, c = coords[..., 0].reshape(-1), coords[..., 1].reshape(-1)
    sample = torch.arange(batch, device=device).repeat_interleave(num)
    win = (sample * rows + (r + start) // window) * cols + (c + start) // window

    order = torch.argsort(win, stable=True)
    sorted_win = win[order]
    counts = torch.bincount(win, minlength=batch * rows * cols)
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(win.numel(), device=device) - first[sorted_win]

    capacity = window * window
    group, offset, num_groups = pack_windows(counts.cpu().numpy(), capacity)
    group = torch.from_numpy(group).to(device)
    offset = torch.from_numpy(offset).to(device)
    slot = torch.empty_like(win)
    slot[order] = group[sorted_win] * capacity + offset[sorted_win] + rank

    total = num_groups * capacity
    index = torch.full((total, ), win.numel(), dtype=torch.long, device=device)
    index[slot] = torch.arange(win.numel(), device=device)
    # Empty slots get a window of their own (they only see themselves: no empty softmax row).
    slot_win = -1 - torch.arange(total, device=device)
    slot_win[slot] = win
    # A pair's table row is (dr + window - 1) * (2 * window - 1) + dc + window - 1, i.e. the
    # difference of the per-slot keys r * (2 * window - 1) + c plus a constant.
    span = 2 * window - 1
    key = torch.zeros(total, dtype=torch.int32, device=device)
    key[slot] = (r * span + c).int()
    key = key.view(num_groups, capacity)
    rel_index = key[:, :, None] - key[:, None, :] + (window - 1) * (span + 1)
    slot_win = slot_win.view(num_groups, capacity)
    rel_index.masked_fill_(slot_win[:, :, None] != slot_win[:, None, :], span * span)
    return WindowLayout(index, slot, rel_index, num_groups, capacity)


def group_window_attention(w_msa, x: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
    """Window attention of the tokens ``x`` (B, N, C) with the weights of an mmpretrain
    ``WindowMSA`` (``qkv``, ``proj``, ``relative_position_bias_table``, ``scale``)."""
    batch, num, dims = x.shape
    heads = w_msa.num_heads
    groups, size = layout.num_groups, layout.group_size
    qkv = w_msa.qkv(x).reshape(batch * num, 3 * dims)
    qkv = torch.cat([qkv, qkv.new_zeros(1, 3 * dims)])[layout.index]
    q, k, v = qkv.view(groups, size, 3, heads, dims // heads).permute(2, 0, 3, 1, 4)

    table = w_msa.relative_position_bias_table
    table = torch.cat([table, table.new_full((1, heads), float('-inf'))])
    bias = F.embedding(layout.rel_index, table).permute(0, 3, 1, 2).to(q.dtype)
    drop = w_msa.attn_drop.p if w_msa.training else 0.
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=bias, dropout_p=drop, scale=w_msa.scale)
    out = out.transpose(1, 2).reshape(groups * size, dims)[layout.slot]
    return w_msa.proj_drop(w_msa.proj(out.view(batch, num, dims)))
