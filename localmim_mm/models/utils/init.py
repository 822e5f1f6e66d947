"""The authors' release initialisation (MAE's), expressed through mmengine ``init_cfg``.

The release initialises every ``nn.Linear`` of encoder and decoders with xavier-uniform and zero
bias, every LayerNorm with weight 1 and bias 0 (MAE's ``_init_weights``), the patch embedding
like a linear layer and the tokens with normal(0.02). ``RELEASE_INIT_CFG`` is the ``init_cfg``
default of every LocalMIM / LoMaR module; the rest is done in their ``init_weights``.
"""
import torch
from mmpretrain.models.backbones.vision_transformer import TransformerEncoderLayer
from torch import nn

__all__ = ['RELEASE_INIT_CFG', 'init_patch_embed_as_linear', 'zero_ffn_biases']

RELEASE_INIT_CFG = [
    dict(type='Xavier', layer='Linear', distribution='uniform', bias=0.),
    dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
]


def init_patch_embed_as_linear(conv: nn.Conv2d) -> None:
    """Xavier-uniform on the flattened (out, in * k * k) weight, as the release (its bias keeps
    PyTorch's default conv init there too)."""
    weight = conv.weight.data
    nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))


@torch.no_grad()
def zero_ffn_biases(module: nn.Module) -> None:
    """mmpretrain's ``TransformerEncoderLayer.init_weights`` runs after any parent ``init_cfg``
    and draws the FFN biases from N(0, 1e-6); the release leaves them at zero."""
    for layer in module.modules():
        if isinstance(layer, TransformerEncoderLayer):
            for m in layer.ffn.modules():
                if isinstance(m, nn.Linear) and m.bias is not None:
                    m.bias.zero_()
