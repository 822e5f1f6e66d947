"""LoMaR's encoder: local windows, mask tokens, relative position bias (spec section 6)."""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.model import ModuleList
from mmpretrain.models.backbones.vision_transformer import VisionTransformer
from mmpretrain.models.utils import to_2tuple
from mmpretrain.registry import MODELS
from torch import nn

from ...runtime.compat import vit_formatted_output
from ..utils import RELEASE_INIT_CFG, init_patch_embed_as_linear, zero_ffn_biases
from ..utils.relpos_attention import RelPosTransformerEncoderLayer, relative_position_index
from ..utils.windows import (crop_windows, num_masked_patches, random_window_mask,
                             sample_window_offsets)

__all__ = ['LoMaRViT']

WINDOW_SAMPLINGS = ('per_image', 'batch')


@MODELS.register_module()
class LoMaRViT(VisionTransformer):
    """ViT encoder for LoMaR pre-training (Chen et al., "Efficient Self-supervised Vision
    Pretraining with Local Masked Reconstruction").

    With ``mask=True`` every image gives ``num_windows`` windows of ``window_size`` x
    ``window_size`` patches, each cut from that image at its own random offset; inside each window
    ``floor(W*W*mask_ratio)`` patches are replaced by a learnable mask token, and each window runs
    through the encoder as its own sequence (cls + W*W tokens). Position enters only through a
    learnable relative position bias per layer and head, indexed by the 2-D offset inside the
    window (it replaces the release's CUDA-only contextual RPE); there is no absolute position
    embedding.

    With ``mask=None`` (or ``False``) the whole image is one sequence (offsets farther apart than
    the window share the edge bias) and the output follows ``out_type`` / ``out_indices`` as in
    ``mmpretrain.VisionTransformer``.

    Checkpoint keys: ``patch_embed.*``, ``cls_token``, ``layers.N.*`` (except the bias tables) and
    ``ln1.*`` are those of ``VisionTransformer``. ``pos_embed`` is kept, frozen at zero and unused,
    only so that a ViT loads a complete encoder (it then starts fine-tuning from a zero absolute
    position embedding and learns it). ``mask_token`` and
    ``layers.N.attn.relative_position_bias_table`` have no counterpart in ``VisionTransformer``.

    Args:
        arch, img_size, patch_size, drop_path_rate, qkv_bias, norm_cfg, interpolate_mode,
            patch_cfg, layer_cfgs: as ``mmpretrain.VisionTransformer``.
        num_windows (int): Windows per image (K). Defaults to 4.
        window_size (int): Window side in patches (W), at most the patch grid. Defaults to 7.
        mask_ratio (float): Share of each window masked, in (0, 1). Defaults to 0.8 (39 of 49).
        window_sampling (str): ``'per_image'`` draws every image's offsets independently;
            ``'batch'`` shares one draw of K offsets across the batch. Defaults to ``'per_image'``.
        final_norm (bool): LayerNorm after the last block (before the linear head).
            Defaults to True.
        out_type, out_indices: Output of the unmasked forward. Defaults to ``'raw'``, last block.
        init_cfg: Defaults to MAE's (which the LoMaR release keeps): xavier-uniform Linear with
            zero bias, LayerNorm 1 / 0; ``init_weights`` adds the patch embedding as a linear
            layer and the tokens normal(0.02); relative position tables truncated normal(0.02).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'b',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 num_windows: int = 4,
                 window_size: int = 7,
                 mask_ratio: float = 0.8,
                 window_sampling: str = 'per_image',
                 out_indices: Union[int, Sequence[int]] = -1,
                 drop_path_rate: float = 0.,
                 qkv_bias: bool = True,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 final_norm: bool = True,
                 out_type: str = 'raw',
                 interpolate_mode: str = 'bicubic',
                 patch_cfg: dict = dict(),
                 layer_cfgs: Union[dict, Sequence[dict]] = dict(),
                 init_cfg: Optional[Union[List[dict], dict]] = RELEASE_INIT_CFG) -> None:
        grid = _patch_grid(img_size, patch_size)
        _check_windows(num_windows, window_size, window_sampling, grid, img_size, patch_size)
        num_masked = num_masked_patches(window_size, mask_ratio, owner='LoMaRViT')
        super().__init__(
            arch=arch, img_size=img_size, patch_size=patch_size, out_indices=out_indices,
            drop_path_rate=drop_path_rate, qkv_bias=qkv_bias, norm_cfg=norm_cfg,
            final_norm=final_norm, out_type=out_type, interpolate_mode=interpolate_mode,
            patch_cfg=patch_cfg, layer_cfgs=layer_cfgs, init_cfg=init_cfg)
        self.patch_size = patch_size
        self.num_windows = num_windows
        self.window_size = window_size
        self.mask_ratio = mask_ratio
        self.num_masked = num_masked
        self.window_sampling = window_sampling
        self.pos_embed.requires_grad_(False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))
        self.layers = self._build_layers(drop_path_rate, qkv_bias, norm_cfg, layer_cfgs)
        self._index_cache = {}
        # Set by ``RNGStateHook`` (on the model's device): offsets and masks are then drawn for
        # the global batch, so they do not depend on the rank split.
        self.mask_generator: Optional[torch.Generator] = None

    def _build_layers(self, drop_path_rate: float, qkv_bias: bool, norm_cfg: dict,
                      layer_cfgs) -> ModuleList:
        """The parent's layers again, with relative position bias up to ``window_size - 1``."""
        if isinstance(layer_cfgs, dict):
            layer_cfgs = [layer_cfgs] * self.num_layers
        rates = np.linspace(0, drop_path_rate, self.num_layers)
        layers = ModuleList()
        for rate, extra in zip(rates, layer_cfgs):
            cfg = dict(embed_dims=self.embed_dims, num_heads=self.arch_settings['num_heads'],
                       feedforward_channels=self.arch_settings['feedforward_channels'],
                       max_offset=self.window_size - 1, drop_path_rate=rate,
                       qkv_bias=qkv_bias, norm_cfg=norm_cfg)
            cfg.update(extra)
            layers.append(RelPosTransformerEncoderLayer(**cfg))
        return layers

    def init_weights(self) -> None:
        super().init_weights()  # init_cfg, then the relative position tables
        nn.init.zeros_(self.pos_embed)
        if isinstance(self.init_cfg, dict) and self.init_cfg['type'] == 'Pretrained':
            return
        init_patch_embed_as_linear(self.patch_embed.projection)
        nn.init.normal_(self.cls_token, std=.02)
        nn.init.normal_(self.mask_token, std=.02)
        zero_ffn_biases(self.layers)

    def forward(self, x: torch.Tensor, mask: Optional[bool] = True):
        """Returns ``(latent, mask, offsets)`` when masking, else the plain ViT-style output.

        ``latent``: (B, K, 1 + W*W, C), each window's encoded sequence (cls first, patches in
        raster order inside the window); ``mask``: (B, K, W, W), 1 = masked; ``offsets``:
        (B, K, 2) long, each window's top-left (row, col) on the image's patch grid.
        """
        if mask is None or mask is False:
            return self._forward_image(x)
        batch = x.shape[0]
        grid = self._input_grid(x)
        offsets = sample_window_offsets(batch, self.num_windows, self.window_size, grid,
                                        per_image=self.window_sampling == 'per_image',
                                        device=x.device, generator=self.mask_generator)
        windows = crop_windows(x, offsets, self.window_size, self.patch_size)
        tokens, _ = self.patch_embed(windows.flatten(0, 1))
        length = self.window_size ** 2
        patch_mask = random_window_mask(batch, self.num_windows, length, self.num_masked,
                                        x.device, self.mask_generator)
        keep = 1. - patch_mask.unsqueeze(-1).to(tokens.dtype)
        tokens = tokens * keep + self.mask_token.to(tokens.dtype) * (1. - keep)
        latent = self._encode(tokens, (self.window_size, self.window_size), [-1])[0]
        return (latent.view(batch, self.num_windows, 1 + length, -1),
                patch_mask.view(batch, self.num_windows, self.window_size, self.window_size),
                offsets)

    def _forward_image(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self._input_grid(x)
        tokens, grid = self.patch_embed(x)
        outs = self._encode(tokens, grid, self.out_indices)
        return tuple(vit_formatted_output(self, out, grid) for out in outs)

    def _encode(self, tokens: torch.Tensor, grid: Tuple[int, int],
                out_indices: Sequence[int]) -> List[torch.Tensor]:
        """cls + tokens through the blocks (no absolute position); outputs of ``out_indices``."""
        wanted = {i % self.num_layers for i in out_indices}
        x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        x = self.pre_norm(self.drop_after_pos(x))
        index = self._relative_index(grid, x.device)
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x, index)
            if i == self.num_layers - 1 and self.final_norm:
                x = self.ln1(x)
            if i in wanted:
                outs.append(x)
        return outs

    def _relative_index(self, grid: Tuple[int, int], device) -> torch.Tensor:
        key = (tuple(grid), str(device))
        if key not in self._index_cache:
            self._index_cache[key] = relative_position_index(grid, self.window_size - 1, device)
        return self._index_cache[key]

    def _input_grid(self, x: torch.Tensor) -> Tuple[int, int]:
        height, width = x.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f'LoMaRViT: input of {height}x{width} px is not divisible by '
                             f'patch_size={self.patch_size}; resize or crop it to a multiple')
        grid = (height // self.patch_size, width // self.patch_size)
        if min(grid) < self.window_size:
            raise ValueError(f'LoMaRViT: window_size={self.window_size} patches does not fit '
                             f'the {grid[0]}x{grid[1]} patch grid of a {height}x{width} input; '
                             'use a larger input or a smaller window_size')
        return grid


def _patch_grid(img_size, patch_size: int) -> Tuple[int, int]:
    size = to_2tuple(img_size)
    if any(s % patch_size for s in size):
        raise ValueError(f'LoMaRViT: img_size={img_size} is not divisible by '
                         f'patch_size={patch_size}; use a multiple of the patch size')
    return size[0] // patch_size, size[1] // patch_size


def _check_windows(num_windows, window_size, window_sampling, grid, img_size, patch_size):
    if not isinstance(num_windows, int) or num_windows < 1:
        raise ValueError(f'LoMaRViT: num_windows={num_windows!r} must be an integer >= 1 '
                         '(the paper uses 4)')
    if not isinstance(window_size, int) or window_size < 1:
        raise ValueError(f'LoMaRViT: window_size={window_size!r} must be an integer >= 1 '
                         'patches (the paper uses 7)')
    if window_size > min(grid):
        raise ValueError(
            f'LoMaRViT: window_size={window_size} is larger than the {grid[0]}x{grid[1]} patch '
            f'grid (img_size={img_size}, patch_size={patch_size}); use window_size <= '
            f'{min(grid)} or a larger img_size')
    if window_sampling not in WINDOW_SAMPLINGS:
        raise ValueError(f'LoMaRViT: window_sampling={window_sampling!r} is not one of '
                         f'{WINDOW_SAMPLINGS}')
