"""Independent statements of what the authors' release stores and computes, for the tests.

Written from the release's ``models_mim.py`` (ViT and Swin) and MAE's ``pos_embed.py``, without
using this project's code: key names and shapes of its pre-training state dicts, its fixed
sin-cos table, and its HOG target.
"""
import argparse
import math
from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Tensors = Dict[str, torch.Tensor]


def mae_sincos_table(dims: int, h: int, w: int, cls_token: bool = True) -> np.ndarray:
    """MAE's ``get_2d_sincos_pos_embed``: raster order, first half encoding the column."""
    def one_axis(d, positions):
        omega = 1. / 10000**(np.arange(d // 2) / (d / 2.))
        out = np.outer(positions.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
    table = np.concatenate([one_axis(dims // 2, cols), one_axis(dims // 2, rows)], axis=1)
    return np.concatenate([np.zeros((1, dims)), table], axis=0) if cls_token else table


def release_hog(img: torch.Tensor, nbins: int, cells: Sequence[int], biases=None):
    """The release's ``HOGLayer`` per scale and colour: a reflect-padded Conv2d(1, 2, 3) with the
    scale's bias, ``floor(atan2(gx, gy) / pi * nbins) % nbins``, k x k average, L2 over bins;
    colours concatenated. Returns one (B, cells, 3 * nbins) tensor per scale."""
    gx = torch.tensor([[1., 0., -1.], [2., 0., -2.], [1., 0., -1.]])
    weight = torch.stack([gx, gx.t()])[:, None]
    out = []
    for k, cell in enumerate(cells):
        bias = None if biases is None else biases[k]
        per_colour = []
        for c in range(3):
            g = F.conv2d(F.pad(img[:, c:c + 1], (1, 1, 1, 1), mode='reflect'), weight, bias)
            mag = g.norm(dim=1, keepdim=True)
            bins = torch.floor(torch.atan2(g[:, 0], g[:, 1]) / math.pi * nbins).long() % nbins
            hist = torch.zeros(img.shape[0], nbins, *img.shape[2:]).scatter_(1, bins[:, None], mag)
            per_colour.append(F.normalize(F.avg_pool2d(hist, cell), p=2, dim=1))
        out.append(torch.cat(per_colour, 1).flatten(2).transpose(1, 2))
    return out


def swin_relative_position_index(window: int) -> torch.Tensor:
    """The original Swin's (and the release's) index of each (query, key) pair of a window in
    the (2w-1)^2 relative position table."""
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij')
    coords = torch.stack([rows.flatten(), cols.flatten()])
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
    return relative[..., 0] * (2 * window - 1) + relative[..., 1]


def _timm_block(r, prefix: str, dim: int, mlp: int) -> Tensors:
    return {prefix + 'norm1.weight': r(dim), prefix + 'norm1.bias': r(dim),
            prefix + 'attn.qkv.weight': r(3 * dim, dim), prefix + 'attn.qkv.bias': r(3 * dim),
            prefix + 'attn.proj.weight': r(dim, dim), prefix + 'attn.proj.bias': r(dim),
            prefix + 'norm2.weight': r(dim), prefix + 'norm2.bias': r(dim),
            prefix + 'mlp.fc1.weight': r(mlp, dim), prefix + 'mlp.fc1.bias': r(mlp),
            prefix + 'mlp.fc2.weight': r(dim, mlp), prefix + 'mlp.fc2.bias': r(dim)}


def _decoder(r, k: int, in_dim: int, dim: int, out_dim: int, grid: int, cls_token: bool,
             scale=None) -> Tensors:
    """``MAE_Decoder`` (ViT: ``scale`` given, pred = deconvs / pool + 1x1 conv) or
    ``ViT_Decoder`` (Swin: pred = Linear), depth 1, MLP ratio 4."""
    p = f'decoder.{k}.'
    sd = {p + 'embed.weight': r(dim, in_dim), p + 'embed.bias': r(dim),
          p + 'mask_token': r(1, 1, dim),
          p + 'pos_embed': torch.from_numpy(mae_sincos_table(dim, grid, grid, cls_token))
          .float()[None],
          p + 'norm.weight': r(dim), p + 'norm.bias': r(dim)}
    sd.update(_timm_block(r, p + 'blocks.0.', dim, 4 * dim))
    if scale is None:
        sd.update({p + 'pred.weight': r(out_dim, dim), p + 'pred.bias': r(out_dim)})
    elif scale == 4:
        sd.update({p + 'pred.0.weight': r(dim, dim // 2, 2, 2), p + 'pred.0.bias': r(dim // 2),
                   p + 'pred.1.weight': r(dim // 2), p + 'pred.1.bias': r(dim // 2),
                   p + 'pred.3.weight': r(dim // 2, dim // 4, 2, 2), p + 'pred.3.bias': r(dim // 4),
                   p + 'pred.4.weight': r(out_dim, dim // 4, 1, 1), p + 'pred.4.bias': r(out_dim)})
    elif scale == 2:
        sd.update({p + 'pred.0.weight': r(dim, dim // 2, 2, 2), p + 'pred.0.bias': r(dim // 2),
                   p + 'pred.1.weight': r(out_dim, dim // 2, 1, 1), p + 'pred.1.bias': r(out_dim)})
    else:  # 1: the 1x1 conv alone; 0.5: AvgPool2d (no parameters) first
        i = 0 if scale == 1 else 1
        sd.update({p + f'pred.{i}.weight': r(out_dim, dim, 1, 1), p + f'pred.{i}.bias': r(out_dim)})
    return sd


def _hog_layers(r, scales: int, bias: bool) -> Tensors:
    gx = torch.tensor([[1., 0., -1.], [2., 0., -2.], [1., 0., -1.]])
    sd = {}
    for k in range(scales):
        sd[f'hog_enc.{k}.conv.weight'] = torch.stack([gx, gx.t()])[:, None]
        if bias:
            sd[f'hog_enc.{k}.conv.bias'] = (torch.rand(2, generator=r.generator) * 2 - 1) / 3
    return sd


class _Random:
    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, *shape):
        return torch.randn(*shape, generator=self.generator)


def release_vit_state(depth=4, dim=32, patch=8, grid=4, decoder_dim=16, nbins=9,
                      hog_bias=False, with_decoder=True, taps=4, seed=0) -> Tensors:
    """``MaskedAutoencoderViT``'s state dict (``MIM_vit_*``): taps [1, 3, depth-3, depth-1],
    scales [4, 2, 1, 0.5], decoders of width ``decoder_dim``, HOG layers, random values."""
    r = _Random(seed)
    mlp = 4 * dim
    sd = {'cls_token': r(1, 1, dim), 'pos_embed': r(1, 1 + grid * grid, dim),
          'patch_embed.proj.weight': r(dim, 3, patch, patch), 'patch_embed.proj.bias': r(dim)}
    for i in range(depth):
        sd.update(_timm_block(r, f'blocks.{i}.', dim, mlp))
    for k in range(taps):
        sd.update({f'norm.{k}.weight': r(dim), f'norm.{k}.bias': r(dim)})
    if with_decoder:
        for k, scale in enumerate([4, 2, 1, 0.5]):
            sd.update(_decoder(r, k, dim, decoder_dim, 3 * nbins, grid, True, scale))
        sd.update(_hog_layers(r, 4, hog_bias))
    return sd


def release_swin_state(dim=8, depths=(1, 1, 1, 1), heads=(1, 1, 2, 2), window=2, grid=2,
                       decoder_dim=8, nbins=18, hog_bias=True, with_decoder=True,
                       seed=1) -> Tensors:
    """``MaskedAutoencoderSwin``'s state dict (``encoder.*``, decoders ``ViT_Decoder`` of widths
    decoder_dim // [2, 1, 1, 1] over grids [4, 2, 1, 1] x ``grid``, HOG layers)."""
    r = _Random(seed)
    e = 'encoder.'
    sd = {e + 'patch_embed.proj.weight': r(dim, 3, 4, 4), e + 'patch_embed.proj.bias': r(dim),
          e + 'patch_embed.norm.weight': r(dim), e + 'patch_embed.norm.bias': r(dim)}
    for i, (depth, nh) in enumerate(zip(depths, heads)):
        c = dim * 2**i
        for j in range(depth):
            b = f'{e}layers.{i}.blocks.{j}.'
            sd.update(_timm_block(r, b, c, 4 * c))
            sd[b + 'attn.relative_position_bias_table'] = r((2 * window - 1)**2, nh)
            sd[b + 'attn.relative_position_index'] = swin_relative_position_index(window)
        if i < len(depths) - 1:
            d = f'{e}layers.{i}.downsample.'
            sd.update({d + 'reduction.weight': r(2 * c, 4 * c), d + 'norm.weight': r(4 * c),
                       d + 'norm.bias': r(4 * c)})
    for k, mult in enumerate([2, 4, 8, 8]):
        sd.update({f'{e}norm.{k}.weight': r(dim * mult), f'{e}norm.{k}.bias': r(dim * mult)})
    if with_decoder:
        for k, (s, div, t) in enumerate(zip([2, 4, 8, 8], [2, 1, 1, 1], [4, 2, 1, 1])):
            sd.update(_decoder(r, k, dim * s, decoder_dim // div, 3 * nbins, grid * t, False))
        sd.update(_hog_layers(r, 4, hog_bias))
    return sd


def save_like_the_release(path: str, state: Tensors, epoch: int = 99) -> str:
    """What the release's ``util/misc.py::save_model`` writes: model, optimizer, epoch, scaler
    and the run's ``argparse.Namespace``."""
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer = torch.optim.AdamW(params, lr=1.5e-4, betas=(0.9, 0.95))
    params[0].grad = torch.ones(3)
    optimizer.step()
    args = argparse.Namespace(model='MIM_vit_base_patch16', batch_size=256, epochs=100,
                              blr=2e-4, lr=None, mask_ratio=0.75, hog_nbins=9, hog_bias=False,
                              data_path='/data/imagenet', output_dir='./output_dir',
                              device='cuda', seed=0, resume='', distributed=True,
                              world_size=8, dist_url='env://', input_size=224)
    scaler = dict(scale=65536.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                  _growth_tracker=17)
    torch.save({'model': state, 'optimizer': optimizer.state_dict(), 'epoch': epoch,
                'scaler': scaler, 'args': args}, path)
    return path
