"""Attention probabilities of mmpretrain ViT blocks, recomputed by forward hooks.

mmpretrain's ``MultiheadAttention`` calls a fused ``scaled_dot_product_attention`` and never
materialises the attention matrix, so a hook on each attention module takes the module's input
(the block's ``ln1`` output) and recomputes ``softmax(q k^T / sqrt(d))`` from the module's own
``qkv`` projection. LoMaR's attention (``RelPosMultiheadAttention``) also receives the relative
position index and adds its learnt bias to the logits, as its forward does. The model classes are
not modified.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from mmpretrain.models.backbones.vision_transformer import VisionTransformer
from torch import nn

from ..models.backbones.lomar_vit import LoMaRViT

__all__ = ['AttentionRecorder', 'attention_blocks', 'encoder_attentions', 'decoder_attentions',
           'patch_attention']


def _check_attention_module(name: str, module: nn.Module) -> None:
    if not all(hasattr(module, a) for a in ('qkv', 'num_heads', 'head_dims')):
        raise TypeError(f'{name} ({type(module).__name__}) is not an mmpretrain '
                        'MultiheadAttention with a fused qkv projection; the analysis tools read '
                        'plain ViT attention only')


def attention_probabilities(module: nn.Module, x: torch.Tensor,
                            index: torch.Tensor = None) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d) [+ bias])`` of an attention module for its input x:
    (B, heads, T, T). ``index``: the relative position index a ``RelPosMultiheadAttention``
    is called with (its bias is added to the logits)."""
    batch, tokens, _ = x.shape
    qkv = module.qkv(x).reshape(batch, tokens, 3, module.num_heads, module.head_dims)
    q, k = qkv.permute(2, 0, 3, 1, 4)[:2].float()
    logits = q @ k.transpose(-2, -1) * module.head_dims**-0.5
    if index is not None:
        logits = logits + module.relative_position_bias(index).float()
    return torch.softmax(logits, dim=-1)


class AttentionRecorder:
    """Context manager that records the attention of the given modules at every forward.

    Args:
        modules (dict[str, nn.Module]): attention modules by display name.

    After a forward, ``maps[name]`` holds the (B, heads, T, T) probabilities (on the CPU).
    """

    def __init__(self, modules: Dict[str, nn.Module]):
        for name, module in modules.items():
            _check_attention_module(name, module)
        self.modules = modules
        self.maps: Dict[str, torch.Tensor] = {}
        self._handles = []

    def _hook(self, name: str):
        def record(module, inputs, output):
            self.maps[name] = attention_probabilities(module, *inputs[:2]).detach().cpu()
        return record

    def __enter__(self) -> 'AttentionRecorder':
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.modules.items()]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def patch_attention(attn: torch.Tensor, num_extra_tokens: int) -> torch.Tensor:
    """Restrict (..., T, T) attention to patch tokens: drop the first ``num_extra_tokens`` (cls)
    rows and columns and renormalise every row to sum to 1."""
    patches = attn[..., num_extra_tokens:, num_extra_tokens:]
    return patches / patches.sum(dim=-1, keepdim=True)


def _vit_backbone(model: nn.Module) -> VisionTransformer:
    backbone = getattr(model, 'backbone', model)
    if not isinstance(backbone, VisionTransformer):
        raise TypeError(f'the model backbone is {type(backbone).__name__}; the NMI and attention '
                        'tools need an mmpretrain VisionTransformer (LocalMIMViT, MAEViT, '
                        'MaskFeatViT, ...)')
    return backbone


def _plain_forward(backbone: VisionTransformer, x: torch.Tensor):
    """The encoder on the whole, unmasked image. LoMaR's blocks need its relative position
    index, which only its own unmasked forward passes; other ViTs run the parent forward."""
    if isinstance(backbone, LoMaRViT):
        return backbone(x, mask=None)
    return VisionTransformer.forward(backbone, x)


def attention_blocks(model: nn.Module) -> List[nn.Module]:
    """The encoder's transformer blocks, in depth order."""
    return list(_vit_backbone(model).layers)


@torch.no_grad()
def encoder_attentions(model: nn.Module, x: torch.Tensor,
                       layers: Sequence[int] = None) -> Dict[int, torch.Tensor]:
    """Patch-token attention (B, heads, N, N) of the chosen encoder layers on unmasked images.

    Runs the plain ``VisionTransformer`` forward (every patch visible) whatever the subclass;
    LoMaR's encoder sees the whole image as one sequence (offsets beyond its window share the
    edge bias, as in fine-tuning).
    """
    backbone = _vit_backbone(model)
    depth = len(backbone.layers)
    layers = list(range(depth)) if layers is None else list(layers)
    check_layers(layers, depth)
    modules = {i: backbone.layers[i].attn for i in layers}
    with AttentionRecorder(modules) as recorder:
        _plain_forward(backbone, x)
    return {i: patch_attention(recorder.maps[i], backbone.num_extra_tokens) for i in layers}


def check_layers(layers: Sequence[int], depth: int) -> None:
    for layer in layers:
        if not isinstance(layer, int) or not 0 <= layer < depth:
            raise ValueError(f'layer {layer!r} is outside the encoder depth {depth}; choose '
                             f'layers in 0..{depth - 1}')


def _decoder_modules(model: nn.Module) -> Tuple[Dict[str, nn.Module], int]:
    """The attention modules of the pre-training decoders, and their number of extra tokens."""
    head, neck = getattr(model, 'head', None), getattr(model, 'neck', None)
    if head is not None and hasattr(head, 'decoders'):  # LocalMIMHead
        names = _vit_backbone(model).tap_names
        modules = {}
        for tap, decoder in zip(names, head.decoders):
            for j, block in enumerate(decoder.blocks):
                suffix = f'.{j}' if len(decoder.blocks) > 1 else ''
                modules[f'decoder_{tap}{suffix}'] = block.attn
        return modules, int(head.decoders[0].with_cls_token)
    if neck is not None and hasattr(neck, 'decoder_blocks'):  # MAEPretrainDecoder
        return {f'decoder.{j}': b.attn for j, b in enumerate(neck.decoder_blocks)}, 1
    return {}, 0


@torch.no_grad()
def decoder_attentions(model: nn.Module, x: torch.Tensor, seed: int) -> Dict[str, torch.Tensor]:
    """Patch-token attention of the pre-training decoders (LocalMIM heads, MAE decoder) under a
    random mask drawn with ``seed``; empty when the model has no such decoder."""
    modules, extra = _decoder_modules(model)
    if not modules:
        return {}
    torch.manual_seed(seed)
    with AttentionRecorder(modules) as recorder:
        if hasattr(model.head, 'decoders'):
            feats, mask, _ = model.backbone(x, mask=True)
            model.head(model.neck(feats), mask)
        else:
            latent, _, ids_restore = model.backbone(x, mask=True)
            model.neck(latent, ids_restore)
    return {name: patch_attention(attn, extra) for name, attn in recorder.maps.items()}
