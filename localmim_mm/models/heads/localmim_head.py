"""LocalMIM's tiny decoders and multi-scale local reconstruction loss."""
from typing import List, Optional, Sequence, Union

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule, ModuleList
from mmpretrain.models.backbones.vision_transformer import TransformerEncoderLayer
from mmpretrain.models.utils import LayerNorm2d
from mmpretrain.registry import MODELS
from torch import nn

from ..utils import (RELEASE_INIT_CFG, check_scales, release_2d_sincos_position_embedding,
                     scale_mask, zero_ffn_biases)

__all__ = ['LocalMIMHead', 'LocalMIMDecoder']


def _per_tap(value, num_taps: int, name: str) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * num_taps
    if len(values) != num_taps:
        raise ValueError(f'LocalMIMHead: {name}={values} has {len(values)} entries but there are '
                         f'{num_taps} supervised layers; give one per layer or a single value')
    return values


def build_predictor(scale: float, dims: int, out_channels: int) -> nn.Sequential:
    """The release's ``MAE_Decoder.pred`` (ViT): resize the (B, dims, h, w) decoder map to the
    target grid (spec section 2), then a 1x1 conv to the target width. Same layer indices as
    the release, so its decoders load by name."""
    if scale == 4:
        resize = [nn.ConvTranspose2d(dims, dims // 2, 2, 2), LayerNorm2d(dims // 2, eps=1e-6),
                  nn.GELU(), nn.ConvTranspose2d(dims // 2, dims // 4, 2, 2)]
    elif scale == 2:
        resize = [nn.ConvTranspose2d(dims, dims // 2, 2, 2)]
    elif scale == 1:
        resize = []
    elif scale == 0.5:
        resize = [nn.AvgPool2d(2)]
    else:
        raise ValueError(f'LocalMIMHead: no rescale step for scale {scale!r}; the decoders '
                         'support 4, 2, 1 and 0.5 (set rescale=False when each tap already has '
                         'its target grid)')
    resized_dims = {4: dims // 4, 2: dims // 2}.get(scale, dims)
    return nn.Sequential(*resize, nn.Conv2d(resized_dims, out_channels, 1))


class LocalMIMDecoder(BaseModule):
    """The release's tiny decoder: Linear -> mask tokens -> sin-cos pos -> Transformer block(s)
    -> LN -> ``pred``.

    ``pred`` is the release's: with ``rescale`` (ViT, ``MAE_Decoder``) the deconv / pool steps of
    :func:`build_predictor` and a 1x1 conv on the (B, C, h, w) map; without (Swin,
    ``ViT_Decoder``) a Linear on the tokens. Parameter names follow the release's
    (``embed``, ``mask_token``, ``blocks``, ``norm``, ``pred``). Initialisation: the head's
    ``init_cfg`` (xavier Linear, LayerNorm 1/0); mask token normal(0.02); the 1x1 conv and the
    deconvs keep PyTorch's default conv init, as in the release.
    """

    def __init__(self, in_channels: int, embed_dims: int, num_heads: int, depth: int,
                 mlp_ratio: float, scale: float, rescale: bool, out_channels: int,
                 with_cls_token: bool, norm_cfg: dict):
        super().__init__()
        self.with_cls_token = with_cls_token
        self.rescale = rescale
        self.embed = nn.Linear(in_channels, embed_dims)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.blocks = ModuleList(
            TransformerEncoderLayer(embed_dims, num_heads, int(mlp_ratio * embed_dims),
                                    qkv_bias=True, norm_cfg=norm_cfg) for _ in range(depth))
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]
        self.pred = (build_predictor(scale, embed_dims, out_channels) if rescale
                     else nn.Linear(embed_dims, out_channels))
        self._pos_cache = {}

    def init_weights(self):
        super().init_weights()
        nn.init.normal_(self.mask_token, std=.02)
        zero_ffn_biases(self.blocks)

    def position_embedding(self, grid, device) -> torch.Tensor:
        """The release's sin-cos table (float32, cached per grid and device); added in float32
        as the release adds its float32 ``pos_embed`` parameter under AMP."""
        key = (tuple(grid), device)
        if key not in self._pos_cache:
            table = release_2d_sincos_position_embedding(
                grid, self.embed.out_features, cls_token=self.with_cls_token)
            self._pos_cache[key] = table.to(device)
        return self._pos_cache[key]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, [1 +] N_visible, C) visible tokens in raster order; mask: (B, h, w), 1 = masked.

        Returns the prediction map (B, out_channels, h * scale, w * scale).
        """
        batch, h, w = mask.shape
        x = self.embed(x)
        cls, x = (x[:, :1], x[:, 1:]) if self.with_cls_token else (None, x)
        # [visible (raster order), mask tokens] -> raster order: a stable argsort of the mask
        # lists visible positions first, its inverse puts every token back in place.
        order = torch.argsort(mask.flatten(1), dim=1, stable=True)
        restore = torch.argsort(order, dim=1)
        num_masked = h * w - x.shape[1]
        x = torch.cat([x, self.mask_token.expand(batch, num_masked, -1).to(x.dtype)], dim=1)
        x = torch.gather(x, 1, restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        if cls is not None:
            x = torch.cat([cls, x], dim=1)
        x = x + self.position_embedding((h, w), x.device)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        if cls is not None:
            x = x[:, 1:]
        if self.rescale:
            return self.pred(x.transpose(1, 2).reshape(batch, -1, h, w))
        return self.pred(x).transpose(1, 2).reshape(batch, -1, h, w)


@MODELS.register_module()
class LocalMIMHead(BaseModule):
    """One tiny decoder per supervised layer and the masked multi-scale regression loss.

    Args:
        in_channels (int | list[int]): Width of each tap (after the neck).
        target_channels (int | list[int]): Width of each target (27 for HOG nbins 9,
            ``3*k*k`` for pixels in ``k x k`` cells).
        scales (list[float]): Target grid / tap token grid per layer. ViT: ``[4, 2, 1, 0.5]``.
        num_layers (int, optional): Number of taps when every per-tap argument is a single value.
        embed_dims, num_heads, depth, mlp_ratio: decoder width / heads / blocks / MLP ratio, a
            value or one per layer. ViT: 256 / 8 / 1 / 4. Swin: [64, 128, 128, 128] / 4 / 1 / 4.
        rescale (bool): Resize the decoder map to the target grid with the spec's deconv / pool
            steps (ViT). ``False`` when each tap already has its target grid (Swin; scales 1).
        token_ratios (int | list[int]): Tap token grid / mask grid per layer (ViT 1; Swin
            ``[4, 2, 1, 1]`` with a 32-px mask unit), used to bring the mask to each tap.
        with_cls_token (bool): The taps carry a leading cls token (ViT yes, Swin no).
        loss_weights (list[float], optional): Weight of each layer's loss. Defaults to all 1.
        loss (dict): The masked reconstruction loss of each layer, on (B, cells, C) predictions
            and targets with a (B, cells) mask. Defaults to mmpretrain's L2
            ``PixelReconstructionLoss``: mean over channels, averaged over the masked cells.
        init_cfg: Defaults to the release's (xavier-uniform Linear with zero bias, LayerNorm
            1 / 0); see :class:`LocalMIMDecoder`.
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 target_channels: Union[int, Sequence[int]],
                 scales: Sequence[float] = (4, 2, 1, 0.5),
                 embed_dims: Union[int, Sequence[int]] = 256,
                 num_heads: Union[int, Sequence[int]] = 8,
                 depth: int = 1,
                 mlp_ratio: float = 4.,
                 rescale: bool = True,
                 token_ratios: Union[int, Sequence[int]] = 1,
                 with_cls_token: bool = True,
                 loss_weights: Optional[Sequence[float]] = None,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 loss: dict = dict(type='PixelReconstructionLoss', criterion='L2'),
                 init_cfg=RELEASE_INIT_CFG):
        super().__init__(init_cfg=init_cfg)
        self.scales = check_scales(scales, 'LocalMIMHead')
        n = len(self.scales)
        if not rescale and any(s != 1 for s in self.scales):
            raise ValueError(f'LocalMIMHead: rescale=False needs every scale to be 1, got '
                             f'scales={self.scales}')
        self.token_ratios = _per_tap(token_ratios, n, 'token_ratios')
        self.loss_weights = _per_tap(1. if loss_weights is None else loss_weights, n,
                                     'loss_weights')
        settings = zip(_per_tap(in_channels, n, 'in_channels'),
                       _per_tap(embed_dims, n, 'embed_dims'), _per_tap(num_heads, n, 'num_heads'),
                       _per_tap(target_channels, n, 'target_channels'), self.scales)
        self.loss_module = MODELS.build(loss)
        self.decoders = ModuleList(
            LocalMIMDecoder(c_in, dims, heads, depth, mlp_ratio, scale, rescale, c_out,
                            with_cls_token, norm_cfg)
            for c_in, dims, heads, c_out, scale in settings)

    def tap_masks(self, mask: torch.Tensor) -> List[torch.Tensor]:
        """The (B, h, w) mask brought to each tap's token grid."""
        return [scale_mask(mask, r) if r != 1 else mask for r in self.token_ratios]

    def forward(self, feats: Sequence[torch.Tensor], mask: torch.Tensor) -> List[torch.Tensor]:
        """Prediction maps, one (B, C_k, H_k, W_k) per supervised layer."""
        return [decoder(x, m) for decoder, x, m in zip(self.decoders, feats, self.tap_masks(mask))]

    def loss(self, feats: Sequence[torch.Tensor], targets: Sequence[torch.Tensor],
             mask: torch.Tensor) -> List[torch.Tensor]:
        """Weighted masked loss per layer (MSE by default: mean over channels, averaged over the
        masked cells)."""
        if not len(feats) == len(targets) == len(self.decoders):
            raise ValueError(f'LocalMIMHead: {len(feats)} taps and {len(targets)} targets for '
                             f'{len(self.decoders)} decoders; the three lists must match')
        return self.loss_by_pred(self.forward(feats, mask), targets, mask)

    def loss_by_pred(self, preds: Sequence[torch.Tensor], targets: Sequence[torch.Tensor],
                     mask: torch.Tensor) -> List[torch.Tensor]:
        """The per-layer losses of given prediction maps (B, C_k, H_k, W_k)."""
        losses = []
        for pred, target, tap_mask, scale, weight in zip(
                preds, targets, self.tap_masks(mask), self.scales, self.loss_weights):
            pred = pred.flatten(2).transpose(1, 2)
            if pred.shape != target.shape:
                raise ValueError(f'LocalMIMHead: prediction {tuple(pred.shape)} and target '
                                 f'{tuple(target.shape)} differ; check scales against the target '
                                 'cell sizes and target_channels against the target width')
            cell_mask = scale_mask(tap_mask, scale).flatten(1)
            losses.append(weight * self.loss_module(pred.float(), target.float(), cell_mask))
        return losses
