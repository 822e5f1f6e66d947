"""Key maps from the authors' release checkpoints (huawei-noah LocalMIM) to this project's layout.

ViT (timm / MAE layout, under ``model``)::

    cls_token, pos_embed                   -> backbone.cls_token, backbone.pos_embed
    patch_embed.proj.*                     -> backbone.patch_embed.projection.*
    blocks.N.norm1 / attn.qkv / attn.proj  -> backbone.layers.N.ln1 / attn.qkv / attn.proj
    blocks.N.norm2 / mlp.fc1 / mlp.fc2     -> backbone.layers.N.ln2 / ffn.layers.0.0 / ffn.layers.1
    norm.K.*  (pre-training, one per tap)  -> neck.norms.K.*
    norm.*    (fine-tuned, final norm)     -> backbone.ln1.*
    fc_norm.* (fine-tuned, after pooling)  -> backbone.ln2.*
    head.*    (fine-tuned classifier)      -> head.fc.*
    decoder.*, hog_enc.*                   -> dropped (pre-training decoders and HOG filters)

Swin (GreenMIM layout, pre-training checkpoints, ``encoder.`` prefix)::

    encoder.patch_embed.proj / norm        -> backbone.patch_embed.projection / norm
    encoder.absolute_pos_embed             -> backbone.absolute_pos_embed
    encoder.layers.I.blocks.J.norm1/norm2  -> backbone.stages.I.blocks.J.norm1/norm2
    ...attn.qkv / attn.proj / attn.relative_position_bias_table
                            -> ...attn.w_msa.qkv / proj / relative_position_bias_table
    ...attn.relative_position_index        -> dropped (a constant the model recomputes)
    ...mlp.fc1 / mlp.fc2                   -> ...ffn.layers.0.0 / ffn.layers.1
    encoder.layers.I.downsample.reduction / norm
                                           -> backbone.stages.I.downsample.reduction / norm,
                                              input channels re-ordered (see below)
    encoder.norm.K.*                       -> neck.norms.K.*
    decoder.*, hog_enc.*                   -> dropped

PatchMerging channel order. The release concatenates each 2x2 group position-major in the order
(row, col) = (0,0), (0,1), (1,0), (1,1): input channel ``p * C + c`` with ``p = 2 * row + col``.
mmpretrain's (and mmcv's) ``PatchMerging`` uses ``nn.Unfold``, whose channels are channel-major:
``c * 4 + p`` with the same ``p = 2 * row + col``. So the release's weights are transposed from
(4, C) to (C, 4) blocks. (The original Swin order (0,0), (1,0), (0,1), (1,1), which the release's
defect is usually described against, would additionally swap positions 1 and 2.)
"""
import re
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .checkpoint_io import StateDict

Rule = Tuple[str, str]

VIT_RULES: List[Rule] = [
    (r'cls_token', r'backbone.cls_token'),
    (r'pos_embed', r'backbone.pos_embed'),
    (r'patch_embed\.proj\.(weight|bias)', r'backbone.patch_embed.projection.\1'),
    (r'blocks\.(\d+)\.norm1\.(weight|bias)', r'backbone.layers.\1.ln1.\2'),
    (r'blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)', r'backbone.layers.\1.attn.\2.\3'),
    (r'blocks\.(\d+)\.norm2\.(weight|bias)', r'backbone.layers.\1.ln2.\2'),
    (r'blocks\.(\d+)\.mlp\.fc1\.(weight|bias)', r'backbone.layers.\1.ffn.layers.0.0.\2'),
    (r'blocks\.(\d+)\.mlp\.fc2\.(weight|bias)', r'backbone.layers.\1.ffn.layers.1.\2'),
    (r'norm\.(\d+)\.(weight|bias)', r'neck.norms.\1.\2'),
    (r'norm\.(weight|bias)', r'backbone.ln1.\1'),
    (r'fc_norm\.(weight|bias)', r'backbone.ln2.\1'),
    (r'head\.(weight|bias)', r'head.fc.\1'),
]
SWIN_BLOCK = r'encoder\.layers\.(\d+)\.blocks\.(\d+)\.'
SWIN_OUT_BLOCK = r'backbone.stages.\1.blocks.\2.'
SWIN_RULES: List[Rule] = [
    (r'encoder\.patch_embed\.proj\.(weight|bias)', r'backbone.patch_embed.projection.\1'),
    (r'encoder\.patch_embed\.norm\.(weight|bias)', r'backbone.patch_embed.norm.\1'),
    (r'encoder\.absolute_pos_embed', r'backbone.absolute_pos_embed'),
    (SWIN_BLOCK + r'(norm1|norm2)\.(weight|bias)', SWIN_OUT_BLOCK + r'\3.\4'),
    (SWIN_BLOCK + r'attn\.(qkv|proj)\.(weight|bias)', SWIN_OUT_BLOCK + r'attn.w_msa.\3.\4'),
    (SWIN_BLOCK + r'attn\.relative_position_bias_table',
     SWIN_OUT_BLOCK + r'attn.w_msa.relative_position_bias_table'),
    (SWIN_BLOCK + r'mlp\.fc1\.(weight|bias)', SWIN_OUT_BLOCK + r'ffn.layers.0.0.\3'),
    (SWIN_BLOCK + r'mlp\.fc2\.(weight|bias)', SWIN_OUT_BLOCK + r'ffn.layers.1.\3'),
    (r'encoder\.layers\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)',
     r'backbone.stages.\1.downsample.\2'),
    (r'encoder\.norm\.(\d+)\.(weight|bias)', r'neck.norms.\1.\2'),
]
VIT_DROPPED = r'(decoder|hog_enc)\..*'
SWIN_DROPPED = (r'(decoder|hog_enc)\..*'
                r'|encoder\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_index')


def merge_to_unfold_order(tensor: torch.Tensor) -> torch.Tensor:
    """Re-order the last (4*C) dim from the release's position-major to Unfold's channel-major."""
    *lead, four_c = tensor.shape
    if four_c % 4:
        raise ValueError(f'PatchMerging tensor of shape {tuple(tensor.shape)}: last dim is not 4*C')
    return tensor.reshape(*lead, 4, four_c // 4).transpose(-1, -2).reshape(*lead, four_c)


def _swin_value_fix(new_key: str, value: torch.Tensor) -> torch.Tensor:
    if '.downsample.' in new_key:
        return merge_to_unfold_order(value)
    return value


LAYOUTS: Dict[str, dict] = {
    'vit': dict(rules=VIT_RULES, dropped=VIT_DROPPED, fix=None,
                signature='blocks.0.attn.qkv.weight'),
    'swin': dict(rules=SWIN_RULES, dropped=SWIN_DROPPED, fix=_swin_value_fix,
                 signature='encoder.layers.0.blocks.0.attn.qkv.weight'),
}


def detect_layout(state_dict: StateDict) -> str:
    for name, layout in LAYOUTS.items():
        if layout['signature'] in state_dict:
            return name
    hint = ''
    if 'layers.0.blocks.0.attn.qkv.weight' in state_dict:
        hint = (' It looks like a Swin without the "encoder." prefix (a fine-tuned model of the '
                'release?); only the release\'s pre-training Swin checkpoints are supported.')
    elif any(k.startswith('backbone.') for k in state_dict):
        hint = ' It already has this project\'s layout (backbone.*); no conversion needed.'
    raise ValueError(
        'not an authors\' release LocalMIM checkpoint: expected a ViT ("blocks.0.attn.qkv.weight", '
        'timm layout) or a Swin ("encoder.layers.0.blocks.0.attn.qkv.weight"); keys look like '
        f'{sorted(state_dict)[:8]}.{hint}')


def convert_release(state_dict: StateDict, layout: Optional[str] = None
                    ) -> Tuple[StateDict, Dict[str, List[str]]]:
    """Map a release state dict; returns the new one and ``{'dropped': [...], ...}``.

    Raises on any key that is neither mapped nor a known pre-training-only tensor, so nothing
    is lost silently.
    """
    layout = layout or detect_layout(state_dict)
    if layout not in LAYOUTS:
        raise ValueError(f'unknown layout {layout!r}; choose one of {sorted(LAYOUTS)}')
    spec = LAYOUTS[layout]
    converted, dropped, unknown = {}, [], []
    for key, value in state_dict.items():
        new_key = _apply_rules(key, spec['rules'])
        if new_key is not None:
            fix: Optional[Callable] = spec['fix']
            converted[new_key] = fix(new_key, value) if fix else value
        elif re.fullmatch(spec['dropped'], key):
            dropped.append(key)
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f'{len(unknown)} keys of the {layout} release checkpoint match no rule: '
                         f'{unknown[:10]}; refusing to write a partial conversion')
    if not any(k.startswith('backbone.') for k in converted):
        raise ValueError(f'no encoder tensor found in the {layout} release checkpoint')
    return converted, dict(dropped=dropped, layout=[layout])


def _apply_rules(key: str, rules: List[Rule]) -> Optional[str]:
    for pattern, target in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return match.expand(target)
    return None
