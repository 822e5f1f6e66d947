"""mmseg modules of the plugin, loaded by segmentation configs with
``custom_imports=dict(imports=['localmim_mm', 'localmim_mm.seg'])``.

The ViT pyramid is mmseg's own ``Feature2Pyramid`` (BEiT's x4 / x2 / x1 / x0.5 neck), so only the
layer-decay constructor and the CamVid dataset live here."""
from .camvid import CamVidDataset
from .layer_decay import BackboneLayerDecayOptimWrapperConstructor

__all__ = ['BackboneLayerDecayOptimWrapperConstructor', 'CamVidDataset']
