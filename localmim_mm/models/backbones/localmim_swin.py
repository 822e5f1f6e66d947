"""The pyramidal LocalMIM encoder: Swin on visible tokens only, four stage taps (spec section 3)."""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.swin_transformer import SwinTransformer
from mmpretrain.models.utils import resize_pos_embed, to_2tuple
from mmpretrain.registry import MODELS

from ..utils import (RELEASE_INIT_CFG, check_taps, draw_global_batch,
                     init_patch_embed_as_linear)
from ..utils.masked_window_attention import (WindowLayout, build_window_layout,
                                             masked_window_attention)

__all__ = ['LocalMIMSwin']

ENCODER_MODES = ('visible', 'mask_token')


@MODELS.register_module()
class LocalMIMSwin(SwinTransformer):
    """Swin Transformer encoder for LocalMIM pre-training.

    With ``mask`` given, the forward masks 75% of the ``mask_unit``-pixel cells (the cells of the
    last stage, 32 px for patch 4 and four stages) and returns, for each tapped stage, its visible
    tokens after the stage's PatchMerging (the raw output for the last stage). With ``mask=None``
    (or ``False``) it is the plain ``mmpretrain.SwinTransformer`` forward with
    ``out_after_downsample=True`` and no output norms (the neck normalises each tap), so the
    ``backbone.*`` keys of a LocalMIM checkpoint are those of ``SwinTransformer``.

    Two encoders compute the masked forward:

    * ``'visible'`` (default): only visible tokens go through the per-token layers. A masked
      cell covers whole PatchMerging groups at every stage, so merging is done cell by cell with
      the stage's own ``PatchMerging``; attention is window attention over the visible tokens
      (:mod:`localmim_mm.models.utils.masked_window_attention`) with the weights of each block,
      laid out with device tensors only (no host synchronisation in the step). Odd blocks use
      shifted windows unless the stage map is not larger than the window.
    * ``'mask_token'`` (slow reference, SimMIM style): a learnable mask token replaces the masked
      patches and the full map runs through the stock stages; the taps keep the visible tokens.

    Args:
        arch, img_size, patch_size, in_channels, window_size, drop_rate, drop_path_rate,
            use_abs_pos_embed, interpolate_mode, with_cp, stage_cfgs, patch_cfg:
            as ``mmpretrain.SwinTransformer``. ``stage_cfgs`` may set a per-stage window
            (``stage_cfgs=[dict(), dict(), dict(), dict(window_size=7)]``).
        out_indices (Sequence[int]): Tapped stages (0-indexed, increasing). Defaults to all four.
        mask_ratio (float): Share of mask cells masked, in (0, 1); exactly
            ``round(mask_ratio * cells)`` cells per sample. Defaults to 0.75.
        mask_unit (int): Side of a mask cell in pixels; must equal the last-stage cell
            (``patch_size * 2 ** (stages - 1)``). Defaults to 32.
        mask_shared (bool): One mask for the whole batch (as the authors' release) instead of one
            per sample. Defaults to False.
        init_cfg: Defaults to the release's: xavier-uniform Linear (qkv, proj, MLP,
            PatchMerging reduction) with zero bias, LayerNorm 1 / 0; ``init_weights`` adds the
            patch embedding as a linear layer; relative position tables keep mmpretrain's (and
            the release's) truncated normal(0.02).
        encoder_mode (str): ``'visible'`` or ``'mask_token'``. Defaults to ``'visible'``.
        drop_path_rate (float): Defaults to 0 (the paper pre-trains without drop path).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 4,
                 in_channels: int = 3,
                 window_size: int = 7,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 mask_ratio: float = 0.75,
                 mask_unit: int = 32,
                 mask_shared: bool = False,
                 encoder_mode: str = 'visible',
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 use_abs_pos_embed: bool = False,
                 interpolate_mode: str = 'bicubic',
                 with_cp: bool = False,
                 stage_cfgs: Union[Sequence[dict], dict] = dict(),
                 patch_cfg: dict = dict(),
                 init_cfg: Optional[Union[List[dict], dict]] = RELEASE_INIT_CFG) -> None:
        if not 0 < mask_ratio < 1:
            raise ValueError(f'LocalMIMSwin: mask_ratio={mask_ratio!r} must lie in (0, 1)')
        if encoder_mode not in ENCODER_MODES:
            raise ValueError(f'LocalMIMSwin: encoder_mode={encoder_mode!r}; choose one of '
                             f'{ENCODER_MODES}')
        out_indices = list(out_indices)
        super().__init__(
            arch=arch, img_size=img_size, patch_size=patch_size, in_channels=in_channels,
            window_size=window_size, drop_rate=drop_rate, drop_path_rate=drop_path_rate,
            out_indices=out_indices, out_after_downsample=True,
            use_abs_pos_embed=use_abs_pos_embed, interpolate_mode=interpolate_mode,
            with_cp=with_cp, pad_small_map=False, norm_cfg=None, stage_cfgs=stage_cfgs,
            patch_cfg=patch_cfg, init_cfg=init_cfg)
        check_taps(out_indices, self.num_layers, 'LocalMIMSwin', 'stage')
        self.img_size = to_2tuple(img_size)
        self.patch_size = patch_size
        self.mask_ratio = mask_ratio
        self.mask_unit = mask_unit
        self.mask_shared = mask_shared
        self.encoder_mode = encoder_mode
        last_cell = patch_size * 2**(self.num_layers - 1)
        if mask_unit != last_cell:
            raise ValueError(
                f'LocalMIMSwin: mask_unit={mask_unit} px differs from the last-stage cell '
                f'{last_cell} px (patch_size {patch_size} x 2^{self.num_layers - 1}); a masked '
                f'cell must cover whole PatchMerging groups at every stage, set mask_unit='
                f'{last_cell}')
        self.check_input_size(to_2tuple(img_size), 'img_size')
        if encoder_mode == 'mask_token':
            self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))
        # Set by ``RNGStateHook`` (on the model's device): see ``random_mask``.
        self.mask_generator: Optional[torch.Generator] = None

    @property
    def tap_names(self) -> List[str]:
        return [f'stage{i + 1}' for i in self.out_indices]

    @property
    def tap_strides(self) -> List[int]:
        """Pixels per token of each tap (after the stage's PatchMerging, if any)."""
        last = self.num_layers - 1
        return [self.patch_size * 2**min(i + 1, last) for i in self.out_indices]

    def stage_windows(self, stage) -> List[int]:
        return [block.attn.window_size for block in stage.blocks]

    def check_input_size(self, size: Tuple[int, int], name: str = 'input') -> None:
        """Raise unless ``size`` tiles into mask cells and every stage map into its windows."""
        if any(s % self.mask_unit for s in size):
            raise ValueError(f'LocalMIMSwin: {name} {size[0]}x{size[1]} is not divisible by the '
                             f'{self.mask_unit}-px mask unit; resize or crop to a multiple')
        for i, stage in enumerate(self.stages):
            scale = self.patch_size * 2**i
            hw = (size[0] // scale, size[1] // scale)
            for window in set(self.stage_windows(stage)):
                if hw[0] % window or hw[1] % window:
                    raise ValueError(
                        f'LocalMIMSwin: stage {i + 1} map {hw[0]}x{hw[1]} ({name} '
                        f'{size[0]}x{size[1]}) is not a multiple of its window {window}; '
                        'choose window sizes that divide every stage map, e.g. per stage with '
                        'stage_cfgs=[dict(block_cfgs=dict(window_size=w)), ...]')

    def init_weights(self) -> None:
        super().init_weights()  # init_cfg, then relative position tables
        if isinstance(self.init_cfg, dict) and self.init_cfg['type'] == 'Pretrained':
            return
        init_patch_embed_as_linear(self.patch_embed.projection)
        if self.encoder_mode == 'mask_token':
            trunc_normal_(self.mask_token, std=.02)

    # ------------------------------------------------------------------ masking
    def num_masked(self, grid: Tuple[int, int]) -> int:
        """Cells masked per sample: ``round(mask_ratio * cells)`` (37 of 49 at 0.75)."""
        return math.floor(self.mask_ratio * grid[0] * grid[1] + 0.5)

    def random_mask(self, batch: int, grid: Tuple[int, int], device) -> torch.Tensor:
        """(B, h, w) float, 1 = masked, exactly :meth:`num_masked` cells per sample.

        The noise comes from ``mask_generator`` when set, for the whole global batch (see
        :func:`~localmim_mm.models.utils.draw_global_batch`); a shared mask is one draw that
        every rank makes alike.
        """
        cells = grid[0] * grid[1]
        if self.mask_shared:
            generator = self.mask_generator
            noise = torch.rand(1, cells, generator=generator,
                               device=generator.device if generator else device).to(device)
        else:
            noise = draw_global_batch(
                lambda n, g, d: torch.rand(n, cells, generator=g, device=d), batch,
                self.mask_generator, device)
        masked = torch.argsort(noise, dim=1)[:, :self.num_masked(grid)]
        mask = torch.zeros_like(noise).scatter_(1, masked, 1.)
        return mask.expand(batch, -1).reshape(batch, *grid).contiguous()

    def check_mask(self, mask: torch.Tensor, batch: int, grid: Tuple[int, int]) -> int:
        """Check a given mask and return the number of visible cells per sample."""
        if tuple(mask.shape) != (batch, *grid):
            raise ValueError(f'LocalMIMSwin: mask of shape {tuple(mask.shape)} given for a '
                             f'(B, h, w) = {(batch, *grid)} mask-cell grid')
        counts = mask.flatten(1).sum(1).tolist()
        if len(set(counts)) != 1 or counts[0] == grid[0] * grid[1]:
            raise ValueError('LocalMIMSwin: every sample must mask the same number of cells and '
                             f'keep at least one; got masked counts {counts}')
        return grid[0] * grid[1] - int(counts[0])

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, mask: Union[None, bool, torch.Tensor] = True):
        """Plain Swin forward for ``mask=None``/``False``; else ``(feats, mask, ids_restore)``.

        ``mask=True`` draws a random mask; a (B, h, w) tensor (1 = masked, same count per sample)
        is used as given (checking it costs one host synchronisation: for analysis, not for the
        training step). ``feats``: one (B, N_visible_k, C_k) tensor per tap, visible tokens in
        raster order; ``mask``: (B, h, w) float on the ``mask_unit`` grid; ``ids_restore``:
        (B, h*w) MAE un-shuffle indices of ``[visible, masked]`` (raster order within each).
        """
        if mask is None or mask is False:
            return super().forward(x)
        batch = x.shape[0]
        self.check_input_size(tuple(x.shape[-2:]))
        grid = (x.shape[-2] // self.mask_unit, x.shape[-1] // self.mask_unit)
        if mask is True:
            mask = self.random_mask(batch, grid, x.device)
            num_visible = grid[0] * grid[1] - self.num_masked(grid)
        else:
            num_visible = self.check_mask(mask, batch, grid)
            mask = mask.float()
        order = torch.argsort(mask.flatten(1), dim=1, stable=True)
        ids_restore = torch.argsort(order, dim=1)
        visible_cells = order[:, :num_visible]

        x, hw_shape = self.patch_embed(x)
        if self.use_abs_pos_embed:
            x = x + resize_pos_embed(self.absolute_pos_embed, self.patch_resolution, hw_shape,
                                     self.interpolate_mode, self.num_extra_tokens)
        if self.encoder_mode == 'visible':
            feats = self.forward_visible(x, hw_shape, visible_cells, grid)
        else:
            feats = self.forward_mask_token(x, hw_shape, mask)
        return feats, mask, ids_restore

    def forward_visible(self, x: torch.Tensor, hw_shape: Tuple[int, int],
                        visible_cells: torch.Tensor, grid: Tuple[int, int]):
        """Visible tokens only, kept cell by cell: (B, cells * side * side, C) per stage, with
        their true map coordinates (:func:`cell_token_coords`) at every stage."""
        batch, dims = x.shape[0], x.shape[-1]
        side = hw_shape[0] // grid[0]
        x = _gather_cells(x.view(batch, *hw_shape, dims), visible_cells, grid[1], side)
        x = self.drop_after_pos(x)
        feats = []
        for i, stage in enumerate(self.stages):
            coords = cell_token_coords(visible_cells, grid[1], side)
            layouts = {}
            for block, window in zip(stage.blocks, self.stage_windows(stage)):
                shift = block.attn.shift_size if min(hw_shape) > window else 0
                if (window, shift) not in layouts:
                    layouts[window, shift] = build_window_layout(coords, hw_shape, window, shift)
                x = _swin_block(block, x, layouts[window, shift])
            if stage.downsample is not None:
                x = merge_cells(stage.downsample, x, side)
                side, hw_shape = side // 2, (hw_shape[0] // 2, hw_shape[1] // 2)
            if i in self.out_indices:
                feats.append(_to_raster(x, cell_token_coords(visible_cells, grid[1], side),
                                        hw_shape))
            if i == self.out_indices[-1]:
                break
        return tuple(feats)

    def forward_mask_token(self, x: torch.Tensor, hw_shape: Tuple[int, int], mask: torch.Tensor):
        """SimMIM-style reference: mask tokens at masked patches, the stock stages on all tokens."""
        side = hw_shape[0] // mask.shape[1]
        token_mask = _upsample(mask, side).flatten(1).unsqueeze(-1).to(x.dtype)
        x = x * (1. - token_mask) + self.mask_token.to(x.dtype) * token_mask
        x = self.drop_after_pos(x)
        feats = []
        for i, stage in enumerate(self.stages):
            x, hw_shape = stage(x, hw_shape, do_downsample=True)
            if i in self.out_indices:
                visible = _upsample(mask, hw_shape[0] // mask.shape[1]).flatten(1) == 0
                feats.append(x[visible].view(x.shape[0], -1, x.shape[-1]))
            if i == self.out_indices[-1]:
                break
        return tuple(feats)


def _swin_block(block, x: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
    """mmpretrain's ``SwinBlock`` with masked window attention in place of ``ShiftWindowMSA``."""

    def inner(x):
        identity = x
        x = block.attn.drop(masked_window_attention(block.attn.w_msa, block.norm1(x), layout))
        x = x + identity
        return block.ffn(block.norm2(x), identity=x)

    if block.with_cp and x.requires_grad:
        return cp.checkpoint(inner, x, use_reentrant=False)
    return inner(x)


def merge_cells(merging, x: torch.Tensor, side: int) -> torch.Tensor:
    """mmcv ``PatchMerging`` applied cell by cell to (B, K * side * side, C) tokens.

    Same result as the module's ``nn.Unfold`` (channel-major, then the 2x2 offsets in raster
    order), written as a reshape: unfolding thousands of tiny cells is slow on CPU.
    """
    batch, _, dims = x.shape
    half = side // 2
    x = x.view(batch, -1, half, 2, half, 2, dims).permute(0, 1, 2, 4, 6, 3, 5)
    x = x.reshape(batch, -1, 4 * dims)
    if merging.norm is not None:
        x = merging.norm(x)
    return merging.reduction(x)


def cell_token_coords(cells: torch.Tensor, grid_w: int, side: int) -> torch.Tensor:
    """(B, K * side * side, 2) map coordinates of the tokens of cells ``cells`` (B, K), in the
    cell-by-cell order in which :func:`_gather_cells` and :func:`merge_cells` keep them.

    After each PatchMerging the same cells hold ``side // 2`` tokens per side, so the true
    coordinates are rebuilt from the cells (the release lists them in raster order instead,
    while its tokens are ordered cell by cell: docs/swin.md).
    """
    offsets = torch.arange(side, device=cells.device)
    rows = (cells // grid_w)[:, :, None, None] * side + offsets[:, None]
    cols = (cells % grid_w)[:, :, None, None] * side + offsets[None, :]
    rows, cols = torch.broadcast_tensors(rows, cols)
    return torch.stack([rows, cols], dim=-1).flatten(1, 3)


def _gather_cells(x: torch.Tensor, cells: torch.Tensor, grid_w: int, side: int) -> torch.Tensor:
    """(B, H, W, C) map -> (B, K * side * side, C) tokens of ``cells``, cell by cell."""
    batch, h, w, dims = x.shape
    x = x.view(batch, h // side, side, w // side, side, dims).transpose(2, 3)
    x = x.reshape(batch, -1, side * side * dims)
    x = torch.gather(x, 1, cells.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return x.view(batch, -1, dims)


def _to_raster(x: torch.Tensor, coords: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
    order = torch.argsort(coords[..., 0] * hw_shape[1] + coords[..., 1], dim=1)
    return torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _upsample(mask: torch.Tensor, factor: int) -> torch.Tensor:
    return mask.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)
