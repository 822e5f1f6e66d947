"""LoMaR's head: a linear layer predicting each window patch's normalized pixels."""
import torch
from mmpretrain.models.heads import MAEPretrainHead
from mmpretrain.registry import MODELS
from torch import nn

__all__ = ['LoMaRHead']


@MODELS.register_module()
class LoMaRHead(MAEPretrainHead):
    """Linear pixel head of LoMaR (no decoder) and its loss on the masked patches of each window.

    Targets are built by ``MAEPretrainHead.construct_target`` from each window's pixel crop: per
    patch, raster order inside the window, ``(p, p, C)`` pixels, normalized per patch when
    ``norm_pix``. The loss (default mmpretrain's L2 ``PixelReconstructionLoss``) is the mean over
    pixels, averaged over the masked patches only.

    Args:
        embed_dims (int): Width of the encoder tokens. Defaults to 768.
        patch_size (int): Patch side in pixels. Defaults to 16.
        in_channels (int): Image channels. Defaults to 3.
        norm_pix (bool): Normalize each target patch (mean 0, variance 1). Defaults to True.
        loss (dict): Masked reconstruction loss, computed in float32.
    """

    def __init__(self,
                 embed_dims: int = 768,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 norm_pix: bool = True,
                 loss: dict = dict(type='PixelReconstructionLoss', criterion='L2')) -> None:
        super().__init__(loss=loss, norm_pix=norm_pix, patch_size=patch_size,
                         in_channels=in_channels)
        self.embed_dims = embed_dims
        self.predictor = nn.Linear(embed_dims, patch_size * patch_size * in_channels)

    def init_weights(self) -> None:
        """The release's (MAE's) linear init; ``MAEPretrainHead`` takes no ``init_cfg``."""
        super().init_weights()
        nn.init.xavier_uniform_(self.predictor.weight)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, K, 1 + L, C) window sequences -> (B, K, L, p*p*channels) patch predictions."""
        return self.predictor(latent[..., 1:, :])

    def loss(self, latent: torch.Tensor, windows: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        """Masked MSE of (B, K, 1 + L, C) ``latent`` against (B, K, channels, Wp, Wp) pixel
        ``windows``; ``mask`` is (B, K, W, W) with 1 = masked."""
        pred = self(latent).flatten(0, 1).float()
        with torch.autocast(device_type=windows.device.type, enabled=False):
            target = self.construct_target(windows.flatten(0, 1).float())
        return self.loss_module(pred, target, mask.flatten(0, 1).flatten(1))
