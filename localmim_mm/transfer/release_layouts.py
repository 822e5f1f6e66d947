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

Swin (GreenMIM layout, pre-training checkpoints, ``encoder.`` prefix)::

    encoder.patch_embed.proj / norm        -> backbone.patch_embed.projection / norm
    encoder.absolute_pos_embed             -> backbone.absolute_pos_embed
    encoder.layers.I.blocks.J.norm1/norm2  -> backbone.stages.I.blocks.J.norm1/norm2
    ...attn.qkv / attn.proj / attn.relative_position_bias_table
                            -> ...attn.w_msa.qkv / proj / relative_position_bias_table
    ...attn.relative_position_index        -> ...attn.w_msa.relative_position_index, checked to
                                              be mmpretrain's (= the original Swin's) indices
    ...mlp.fc1 / mlp.fc2                   -> ...ffn.layers.0.0 / ffn.layers.1
    encoder.layers.I.downsample.reduction / norm
                                           -> backbone.stages.I.downsample.reduction / norm,
                                              input channels re-ordered (see below)
    encoder.norm.K.*                       -> neck.norms.K.*

Pre-training decoders and HOG target (both layouts; ``LocalMIMDecoder`` keeps the release's names)::

    decoder.K.embed / mask_token / norm / pred.*
                                           -> head.decoders.K.embed / mask_token / norm / pred.*
    decoder.K.blocks.J.norm1 / attn.qkv / attn.proj / norm2 / mlp.fc1 / mlp.fc2
                            -> head.decoders.K.blocks.J.ln1 / attn.qkv / attn.proj / ln2 /
                               ffn.layers.0.0 / ffn.layers.1
    hog_enc.K.conv.bias (one (2,) per scale)
                                           -> row K of target_generator.hog_bias (scales, 2)
    decoder.K.pos_embed, hog_enc.K.conv.weight
                                           -> dropped after checking that they are the fixed
                                              sin-cos table and Sobel filters recomputed here

PatchMerging channel order. The release concatenates each 2x2 group position-major in the order
(row, col) = (0,0), (0,1), (1,0), (1,1): input channel ``p * C + c`` with ``p = 2 * row + col``.
mmpretrain's (and mmcv's) ``PatchMerging`` uses ``nn.Unfold``, whose channels are channel-major:
``c * 4 + p`` with the same ``p = 2 * row + col``. So the release's weights are transposed from
(4, C) to (C, 4) blocks. (The original Swin order (0,0), (1,0), (0,1), (1,1), which the release's
defect is usually described against, would additionally swap positions 1 and 2.)
"""
import math
import re
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmpretrain.models.utils.attention import WindowMSA

from ..models.utils.position import release_2d_sincos_position_embedding
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
    (SWIN_BLOCK + r'attn\.relative_position_index',
     SWIN_OUT_BLOCK + r'attn.w_msa.relative_position_index'),
    (SWIN_BLOCK + r'mlp\.fc1\.(weight|bias)', SWIN_OUT_BLOCK + r'ffn.layers.0.0.\3'),
    (SWIN_BLOCK + r'mlp\.fc2\.(weight|bias)', SWIN_OUT_BLOCK + r'ffn.layers.1.\3'),
    (r'encoder\.layers\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)',
     r'backbone.stages.\1.downsample.\2'),
    (r'encoder\.norm\.(\d+)\.(weight|bias)', r'neck.norms.\1.\2'),
]
DECODER = r'decoder\.(\d+)\.'
DECODER_BLOCK = DECODER + r'blocks\.(\d+)\.'
OUT_DECODER_BLOCK = r'head.decoders.\1.blocks.\2.'
DECODER_RULES: List[Rule] = [
    (DECODER + r'(embed\.weight|embed\.bias|mask_token|norm\.weight|norm\.bias)',
     r'head.decoders.\1.\2'),
    (DECODER + r'pred\.((\d+\.)?(weight|bias))', r'head.decoders.\1.pred.\2'),
    (DECODER_BLOCK + r'norm1\.(weight|bias)', OUT_DECODER_BLOCK + r'ln1.\3'),
    (DECODER_BLOCK + r'attn\.(qkv|proj)\.(weight|bias)', OUT_DECODER_BLOCK + r'attn.\3.\4'),
    (DECODER_BLOCK + r'norm2\.(weight|bias)', OUT_DECODER_BLOCK + r'ln2.\3'),
    (DECODER_BLOCK + r'mlp\.fc1\.(weight|bias)', OUT_DECODER_BLOCK + r'ffn.layers.0.0.\3'),
    (DECODER_BLOCK + r'mlp\.fc2\.(weight|bias)', OUT_DECODER_BLOCK + r'ffn.layers.1.\3'),
]
# One (2,) gradient bias per scale, stacked in scale order into one (scales, 2) buffer.
HOG_BIAS = r'hog_enc\.(\d+)\.conv\.bias'
HOG_BIAS_KEY = 'target_generator.hog_bias'


def merge_to_unfold_order(tensor: torch.Tensor) -> torch.Tensor:
    """Re-order the last (4*C) dim from the release's position-major to Unfold's channel-major."""
    *lead, four_c = tensor.shape
    if four_c % 4:
        raise ValueError(f'PatchMerging tensor of shape {tuple(tensor.shape)}: last dim is not 4*C')
    return tensor.reshape(*lead, 4, four_c // 4).transpose(-1, -2).reshape(*lead, four_c)


def _swin_value_fix(new_key: str, value: torch.Tensor) -> torch.Tensor:
    if '.downsample.' in new_key:
        return merge_to_unfold_order(value)
    if new_key.endswith('relative_position_index'):
        _check_relative_position_index(new_key, value)
    return value


def _check_relative_position_index(key: str, index: torch.Tensor) -> None:
    window = math.isqrt(index.shape[0])
    expected = WindowMSA(1, (window, window), 1).relative_position_index
    if index.shape != expected.shape or not torch.equal(index.long(), expected):
        raise ValueError(f'{key}: the relative position indices differ from the Swin formula for '
                         f'a {window}x{window} window; not a release checkpoint as known here')


def _is_sobel_pair(value: torch.Tensor) -> bool:
    """The release's ``HOGLayer`` filter: (2, 1, 3, 3), d/dx kernel then its transpose."""
    gx = torch.tensor([[1., 0., -1.], [2., 0., -2.], [1., 0., -1.]])
    return tuple(value.shape) == (2, 1, 3, 3) and torch.equal(
        value.float(), torch.stack([gx, gx.t()])[:, None])


def _is_decoder_table(value: torch.Tensor) -> bool:
    """The release decoder's fixed ``pos_embed``: MAE's sin-cos table (cls slot or not)."""
    if value.dim() != 3 or value.shape[0] != 1:
        return False
    length, dims = value.shape[1:]
    for cls_token in (True, False):
        side = math.isqrt(length - cls_token)
        if side * side == length - cls_token:
            table = release_2d_sincos_position_embedding((side, side), dims, cls_token)
            if torch.allclose(value.float(), table, atol=1e-5):
                return True
    return False


# Tensors this project recomputes instead of storing: dropped once checked to be the constants.
CONSTANTS: Dict[str, Tuple[Callable[[torch.Tensor], bool], str]] = {
    DECODER + r'pos_embed': (_is_decoder_table, 'the fixed sin-cos table'),
    r'hog_enc\.(\d+)\.conv\.weight': (_is_sobel_pair, 'the fixed Sobel filters'),
}

LAYOUTS: Dict[str, dict] = {
    'vit': dict(rules=VIT_RULES + DECODER_RULES, fix=None,
                signature='blocks.0.attn.qkv.weight'),
    'swin': dict(rules=SWIN_RULES + DECODER_RULES, fix=_swin_value_fix,
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
    """Map a whole release state dict (encoder, per-tap norms, decoders, HOG biases).

    Returns the new state dict and ``{'layout': [name], 'dropped': [...], 'hog_bias': [...]}``:
    the release keys dropped (constants recomputed here, checked) and those stacked into the
    HOG bias. Raises on any key that no rule maps and that is not a known constant, and on a
    "constant" that does not hold the expected values, so nothing is lost silently.
    """
    layout = layout or detect_layout(state_dict)
    if layout not in LAYOUTS:
        raise ValueError(f'unknown layout {layout!r}; choose one of {sorted(LAYOUTS)}')
    spec = LAYOUTS[layout]
    converted, dropped, unknown, hog_biases = {}, [], [], {}
    for key, value in state_dict.items():
        new_key = _apply_rules(key, spec['rules'])
        bias = re.fullmatch(HOG_BIAS, key)
        if new_key is not None:
            fix: Optional[Callable] = spec['fix']
            converted[new_key] = fix(new_key, value) if fix else value
        elif bias:
            hog_biases[int(bias.group(1))] = (key, value)
        elif _is_constant(key, value):
            dropped.append(key)
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f'{len(unknown)} keys of the {layout} release checkpoint match no rule: '
                         f'{unknown[:10]}; refusing to write a partial conversion')
    if not any(k.startswith('backbone.') for k in converted):
        raise ValueError(f'no encoder tensor found in the {layout} release checkpoint')
    if hog_biases:
        converted[HOG_BIAS_KEY] = _stack_scales(hog_biases)
    return converted, dict(layout=[layout], dropped=dropped,
                           hog_bias=[hog_biases[k][0] for k in sorted(hog_biases)])


def _is_constant(key: str, value: torch.Tensor) -> bool:
    for pattern, (holds_constant, what) in CONSTANTS.items():
        if re.fullmatch(pattern, key):
            if not holds_constant(value):
                raise ValueError(f'{key} should hold {what} (this project recomputes it), but its '
                                 f'values differ; not a LocalMIM release checkpoint as known here')
            return True
    return False


def _stack_scales(biases: Dict[int, Tuple[str, torch.Tensor]]) -> torch.Tensor:
    scales = sorted(biases)
    if scales != list(range(len(scales))):
        raise ValueError(f'HOG biases of scales {scales} found; expected 0..{len(scales) - 1}')
    return torch.stack([biases[k][1].reshape(2) for k in scales])


def summarize_names(names: List[str]) -> str:
    """``['decoder.0.pos_embed', 'decoder.1.pos_embed', 'x']`` -> ``'decoder.*.pos_embed (2), x'``
    (every numeric key component shown as ``*``)."""
    groups: Dict[str, List[str]] = {}
    for name in names:
        groups.setdefault(re.sub(r'(?<=\.)\d+(?=\.|$)', '*', name), []).append(name)
    return ', '.join(f'{pattern} ({len(members)})' if len(members) > 1 else members[0]
                     for pattern, members in groups.items())


def _apply_rules(key: str, rules: List[Rule]) -> Optional[str]:
    for pattern, target in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return match.expand(target)
    return None
