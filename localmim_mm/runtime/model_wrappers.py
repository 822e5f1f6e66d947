"""The model a DDP / FSDP wrapper holds."""
from mmengine.model import is_model_wrapper
from torch import nn

__all__ = ['unwrap_model']


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DDP / FSDP wrapper (its sub-modules are called directly, so no wrapper
    forward, no gradient bucket and no collective is involved)."""
    return model.module if is_model_wrapper(model) else model
