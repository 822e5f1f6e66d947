"""mmseg modules of the plugin, loaded by segmentation configs with
``custom_imports=dict(imports=['localmim_mm', 'localmim_mm.seg'])``.

The ViT pyramid is mmseg's own ``Feature2Pyramid`` (BEiT's x4 / x2 / x1 / x0.5 neck), so only the
CamVid dataset lives here (the layer-decay constructor is registered by ``import localmim_mm``,
in mmengine's root registry)."""
from .camvid import CamVidDataset

__all__ = ['CamVidDataset']
