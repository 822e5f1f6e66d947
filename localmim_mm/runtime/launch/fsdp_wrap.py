"""FSDP wrap policy for the ViT pre-training models: one FSDP unit per transformer block.

``FSDPStrategy(model_wrapper=dict(auto_wrap_policy=dict(type='vit_block_wrap_policy')))``.

An FSDP unit gathers its parameters only when it is *called*. A size-based policy also wraps
modules whose methods are called directly (``head.loss``, ``neck``, Swin's windowed block
internals), whose parameters then stay sharded (``mat2 must be a matrix``). So only modules that
are always entered through ``__call__`` become units: mmpretrain's ``TransformerEncoderLayer``
(the ViT / LoMaR encoder blocks and LocalMIM's decoder blocks) and LocalMIM's per-tap
decoders. Everything else (embeddings, norms, necks, heads' glue) lives in the root unit.
Swin backbones are not split by this policy (their blocks are driven through internals): FSDP
then shards their parameters, gradients and optimizer state but gathers the whole model at once.
"""
from mmengine.registry import FUNCTIONS
from mmpretrain.models.backbones.vision_transformer import TransformerEncoderLayer
from torch import nn

__all__ = ['vit_block_wrap_policy', 'fsdp_unit_types']


def fsdp_unit_types() -> tuple:
    from localmim_mm.models.heads.localmim_head import LocalMIMDecoder
    return TransformerEncoderLayer, LocalMIMDecoder


@FUNCTIONS.register_module()
def vit_block_wrap_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int) -> bool:
    """``auto_wrap_policy`` callable of ``torch.distributed.fsdp`` (see module docstring)."""
    return True if recurse else isinstance(module, fsdp_unit_types())
