"""localmim_mm: LocalMIM (CVPR 2023) and LoMaR as an mmpretrain plugin.

Importing the package registers every module into mmpretrain's registries, so a config needs only
``default_scope = 'mmpretrain'`` and ``custom_imports = dict(imports=['localmim_mm'])``.
Modules meant for mmdet / mmseg live in ``localmim_mm.det`` / ``localmim_mm.seg`` and are imported
only by the configs that need them (``import localmim_mm`` never imports mmdet or mmseg).
Importing registers and nothing else: modules, hooks, the layer-decay constructor, the model
index (``mmpretrain.list_models``) and the loader of the authors' release URLs. The run-hardening
layer (:mod:`localmim_mm.runtime`) is switched on by the recipes' runtime and the tools, not here.
"""
from .version import __version__  # noqa: F401
from . import engine, models  # noqa: F401,E402
from . import datasets, transfer  # noqa: F401,E402
# Registration only: the reliability hooks and the FSDP wrap policy (runtime.enable() is what
# changes process-wide behaviour, and is not called here).
from .runtime import hooks, launch  # noqa: F401,E402
from .zoo import register_model_index  # noqa: E402

register_model_index()
