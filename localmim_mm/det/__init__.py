"""mmdet modules of the plugin, loaded by detection configs with
``custom_imports=dict(imports=['localmim_mm', 'localmim_mm.det'])``."""
from .layer_norm_2d import LayerNorm2d
from .simple_feature_pyramid import SimpleFeaturePyramid
from .vitdet import ViTDet

__all__ = ['LayerNorm2d', 'SimpleFeaturePyramid', 'ViTDet']
