"""The columnar LocalMIM encoder: MAE masking, taps at several blocks (spec section 2)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmpretrain.models.backbones.vision_transformer import VisionTransformer
from mmpretrain.models.selfsup.mae import MAEViT
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS

from ..utils import (RELEASE_INIT_CFG, check_taps, draw_global_batch,
                     release_2d_sincos_position_embedding, zero_ffn_biases)

__all__ = ['LocalMIMViT']


def default_taps(depth: int) -> List[int]:
    """The paper's supervised blocks: two low, two high (ViT-B: 1, 3, 9, 11)."""
    return [1, 3, depth - 3, depth - 1]


@MODELS.register_module()
class LocalMIMViT(MAEViT):
    """ViT encoder for LocalMIM pre-training.

    With ``mask=True`` the forward draws an MAE random mask per sample, runs cls + visible tokens
    through the blocks and returns the raw outputs of the supervised blocks. With ``mask=None`` (or
    ``False``) it is the plain ``mmpretrain.VisionTransformer`` forward, so ``backbone.*`` keys of a
    LocalMIM checkpoint are exactly those of ``VisionTransformer`` (``final_norm=False``: the paper
    normalises each tap in the neck, there is no shared final norm).

    Args:
        arch, img_size, patch_size, drop_path_rate, norm_cfg, patch_cfg, layer_cfgs:
            as ``mmpretrain.VisionTransformer``.
        out_indices (Sequence[int], optional): Supervised blocks (0-indexed), strictly increasing.
            Defaults to ``[1, 3, depth-3, depth-1]``.
        mask_ratio (float): Share of patches masked per sample, in (0, 1). Defaults to 0.75.
        isolate_grad (bool): Gradient-isolated pre-training (paper ablation): the features passed
            on after a tap are detached, so each local loss only updates the blocks since the
            previous tap. Defaults to False.
        final_norm (bool): Kept False for pre-training (see above).
        out_type (str): Output of the unmasked forward. Defaults to ``'raw'``.
        init_cfg: Defaults to the release's: xavier-uniform Linear with zero bias, LayerNorm
            1 / 0; ``init_weights`` adds the patch embedding as a linear layer, the cls token
            normal(0.02) and the release's fixed sin-cos position table.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'b',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 out_indices: Optional[Sequence[int]] = None,
                 mask_ratio: float = 0.75,
                 isolate_grad: bool = False,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 final_norm: bool = False,
                 out_type: str = 'raw',
                 interpolate_mode: str = 'bicubic',
                 patch_cfg: dict = dict(),
                 layer_cfgs: dict = dict(),
                 init_cfg: Optional[Union[List[dict], dict]] = RELEASE_INIT_CFG) -> None:
        if not 0 < mask_ratio < 1:
            raise ValueError(f'LocalMIMViT: mask_ratio={mask_ratio!r} must lie in (0, 1)')
        _check_img_size(img_size, patch_size)
        depth = _arch_depth(arch, self.arch_zoo)
        taps = default_taps(depth) if out_indices is None else list(out_indices)
        check_taps(taps, depth, 'LocalMIMViT', 'tap')
        super().__init__(
            arch=arch, img_size=img_size, patch_size=patch_size, out_indices=taps,
            drop_path_rate=drop_path_rate, norm_cfg=norm_cfg, final_norm=final_norm,
            out_type=out_type, interpolate_mode=interpolate_mode, patch_cfg=patch_cfg,
            layer_cfgs=layer_cfgs, mask_ratio=mask_ratio, init_cfg=init_cfg)
        self.isolate_grad = isolate_grad
        # Set by ``RNGStateHook`` (on the model's device): masks then do not depend on the rank
        # split (see mask_noise).
        self.mask_generator: Optional[torch.Generator] = None
        self.patch_size = patch_size

    @property
    def tap_names(self) -> List[str]:
        return [f'block{i}' for i in self.out_indices]

    @property
    def tap_strides(self) -> List[int]:
        """Pixels per token side at each tap (every ViT tap is on the patch grid)."""
        return [self.patch_size] * len(self.out_indices)

    def init_weights(self) -> None:
        super().init_weights()  # init_cfg, then MAEViT: patch embedding as linear, cls token
        # MAEViT's table is mmpretrain's (transposed to the release's) and square only.
        self.pos_embed.data.copy_(release_2d_sincos_position_embedding(
            self.patch_resolution, self.pos_embed.shape[-1], cls_token=True))
        zero_ffn_biases(self.layers)

    def random_masking(self, x: torch.Tensor, mask_ratio: float = 0.75
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """MAE's per-sample random masking, visible tokens kept in raster order.

        Keeping raster order lets every decoder re-insert the visible tokens with the mask alone
        (the same way for ViT and Swin); attention itself does not depend on token order.
        """
        n, length, dims = x.shape
        len_keep = int(length * (1 - mask_ratio))
        noise = self.mask_noise(n, length, x.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_keep, _ = torch.sort(ids_shuffle[:, :len_keep], dim=1)
        mask = torch.ones(n, length, device=x.device)
        mask.scatter_(1, ids_keep, 0.)
        ids_shuffle = torch.argsort(mask, dim=1, stable=True)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        x_visible = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dims))
        return x_visible, mask, ids_restore

    def mask_noise(self, batch: int, length: int, device: torch.device) -> torch.Tensor:
        """Uniform noise ranking each sample's patches (the lowest ``len_keep`` stay visible).

        Without ``mask_generator`` it is drawn from the global RNG of ``device``.
        """
        return draw_global_batch(lambda n, g, d: torch.rand(n, length, generator=g, device=d),
                                 batch, self.mask_generator, device)

    def forward(self, x: torch.Tensor, mask: Optional[bool] = True):
        """Returns ``(tap_features, mask, ids_restore)`` when masking, else the plain ViT output.

        ``tap_features``: tuple of (B, 1 + N_visible, C) raw block outputs (cls first, visible
        tokens in raster order); ``mask``: (B, h, w) with 1 for masked patches; ``ids_restore``:
        (B, h*w), MAE's indices that un-shuffle ``[visible, masked]`` back to raster order.
        """
        if mask is None or mask is False:
            return VisionTransformer.forward(self, x)
        batch = x.shape[0]
        x, grid = self.patch_embed(x)
        pos_embed = resize_pos_embed(self.pos_embed, self.patch_resolution, grid,
                                     mode=self.interpolate_mode, num_extra_tokens=1)
        x, patch_mask, ids_restore = self.random_masking(x + pos_embed[:, 1:], self.mask_ratio)
        cls_token = (self.cls_token + pos_embed[:, :1]).expand(batch, -1, -1)
        x = torch.cat((cls_token, x), dim=1)

        taps = []
        for i, layer in enumerate(self.layers[:self.out_indices[-1] + 1]):
            x = layer(x)
            if i in self.out_indices:
                taps.append(x)
                if self.isolate_grad:
                    x = x.detach()
        return tuple(taps), patch_mask.view(batch, *grid), ids_restore


def _arch_depth(arch, arch_zoo) -> int:
    if isinstance(arch, str):
        if arch.lower() not in arch_zoo:
            raise ValueError(f'LocalMIMViT: unknown arch {arch!r}; choose one of '
                             f'{sorted(arch_zoo)} or give a dict')
        return arch_zoo[arch.lower()]['num_layers']
    return arch['num_layers']


def _check_img_size(img_size, patch_size: int) -> None:
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if any(s % patch_size for s in size):
        raise ValueError(f'LocalMIMViT: img_size={img_size} is not divisible by '
                         f'patch_size={patch_size}; resize or crop the input to a multiple')
