"""The release's fixed 2-D sin-cos position table (MAE's ``get_2d_sincos_pos_embed``)."""
from typing import Sequence

import torch
from mmpretrain.models.utils import build_2d_sincos_position_embedding

__all__ = ['release_2d_sincos_position_embedding']


def release_2d_sincos_position_embedding(grid: Sequence[int], dims: int,
                                         cls_token: bool = False) -> torch.Tensor:
    """(1, [1 +] h * w, dims) table, positions in raster order, the first half of the channels
    encoding the column and the second half the row, as the authors' release (and MAE).

    mmpretrain's ``build_2d_sincos_position_embedding`` lists the same rows column by column, so
    its table is the release's transposed: reorder it rather than re-derive the formula.
    """
    h, w = grid
    table = build_2d_sincos_position_embedding((h, w), dims)  # (1, w * h, dims), column-major
    table = table.view(w, h, dims).transpose(0, 1).reshape(1, h * w, dims)
    if cls_token:
        table = torch.cat([table.new_zeros(1, 1, dims), table], dim=1)
    return table
