"""The methods of the learning-efficiency benchmark as variants of the shipped configs (also timed
at ViT-B/224 by the ``variants`` group of ``throughput``)."""
from typing import Optional

from mmpretrain.models.backbones.vision_transformer import VisionTransformer

from localmim_mm.models.backbones.localmim_vit import default_taps

from .models import load_config, model_cfg

# Which taps are supervised ('all': the config's four, 'top': the last block only) at which scales.
EFFICIENCY_METHODS = {
    'LocalMIM-HOG': dict(family='localmim', target='hog', taps='all', scales=[4, 2, 1, 0.5]),
    'LocalMIM-pixel': dict(family='localmim', target='pixel', taps='all',
                           scales=[4, 2, 1, 0.5]),
    'MAE': dict(family='mae'),
    'LocalMIM-HOG top tap': dict(family='localmim', target='hog', taps='top', scales=[0.5]),
    'LocalMIM-HOG one scale': dict(family='localmim', target='hog', taps='all',
                                   scales=[1, 1, 1, 1]),
}


def arch_settings(arch) -> dict:
    """embed_dims / num_layers of a ViT ``arch`` (an mmpretrain arch name or a dict)."""
    if isinstance(arch, str):
        return VisionTransformer.arch_zoo[arch.lower()]
    return arch


def method_config(name: str, arch='b', img_size: int = 224, patch_size: int = 16,
                  decoder: Optional[dict] = None) -> dict:
    """The model config of an efficiency method on a ViT encoder ``arch``.

    Built from the shipped config of the method (``configs/_base_/models/localmim_vit-base-p16.py``
    for HOG, the ViT-B pixel recipe, mmpretrain's MAE recipe), so init_cfg and every setting not
    named here stay the config's. ``decoder``: ``dict(embed_dims=, num_heads=)`` replaces the
    width of every decoder (LocalMIM's four, MAE's one); their depth stays the config's.
    """
    if name not in EFFICIENCY_METHODS:
        raise KeyError(f'unknown method {name!r}; choose from {list(EFFICIENCY_METHODS)}')
    spec = EFFICIENCY_METHODS[name]
    if spec['family'] == 'mae':
        return _mae_config(arch, img_size, patch_size, decoder)
    return _localmim_config(name, spec, arch, img_size, patch_size, decoder)


def _mae_config(arch, img_size: int, patch_size: int, decoder: Optional[dict]) -> dict:
    model = model_cfg(load_config('mae'))
    model['backbone'].update(arch=arch, img_size=img_size, patch_size=patch_size)
    model['neck'].update(num_patches=(img_size // patch_size) ** 2, patch_size=patch_size,
                         embed_dim=arch_settings(arch)['embed_dims'])
    model['head']['patch_size'] = patch_size
    if decoder:
        model['neck'].update(decoder_embed_dim=decoder['embed_dims'],
                             decoder_num_heads=decoder['num_heads'])
    return model


def _localmim_config(name: str, spec: dict, arch, img_size: int, patch_size: int,
                     decoder: Optional[dict]) -> dict:
    dims, depth = arch_settings(arch)['embed_dims'], arch_settings(arch)['num_layers']
    model = model_cfg(load_config('localmim_vit' if spec['target'] == 'hog'
                                  else 'localmim_vit_pixel'))
    taps = default_taps(depth) if spec['taps'] == 'all' else [depth - 1]
    scales = list(spec['scales'])
    cells = [patch_size / s for s in scales]
    if any(c != int(c) for c in cells):
        raise ValueError(f'{name}: patch {patch_size} at scales {scales} gives cells {cells}; '
                         'use a patch size divisible by the inverse of every scale')
    cells = [int(c) for c in cells]
    model['backbone'].update(arch=arch, img_size=img_size, patch_size=patch_size,
                             out_indices=taps)
    model['neck'].update(in_channels=dims, num_layers=len(taps))
    generator = model['target_generator']
    generator['cell_sizes'] = cells
    channels = (3 * generator['nbins'] if generator['type'] == 'MultiScaleHOGGenerator'
                else [3 * c * c for c in cells])
    model['head'].update(in_channels=dims, scales=scales, target_channels=channels)
    if decoder:
        model['head'].update(embed_dims=decoder['embed_dims'], num_heads=decoder['num_heads'])
    return model
