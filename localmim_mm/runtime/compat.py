"""The mmengine / mmpretrain versions this package's uses of their private names were written and
tested against, and the version-checked access to those names.

Each use of a private name sits in ``localmim_mm/runtime`` and passes a ``require_tested_*`` check
first, so another version fails loudly, naming the tested one, instead of misbehaving. This module
imports nothing of the package, so every layer may use its accessors (``tests/test_layers.py``).
"""
import mmengine
import mmpretrain
from torch import nn

TESTED_MMENGINE = '0.10.7'
TESTED_MMPRETRAIN = '1.2.0'


def require_tested_mmengine(what: str) -> None:
    _require('mmengine', mmengine.__version__, TESTED_MMENGINE, what)


def require_tested_mmpretrain(what: str) -> None:
    _require('mmpretrain', mmpretrain.__version__, TESTED_MMPRETRAIN, what)


def _require(package: str, installed: str, tested: str, what: str) -> None:
    if installed != tested:
        raise RuntimeError(
            f'localmim_mm: {what} relies on {package} {tested} internals, but {package} '
            f'{installed} is installed; install {package}=={tested} (requirements.txt)')


def vit_formatted_output(backbone: nn.Module, tokens, patch_grid):
    """A subclass of mmpretrain's ``VisionTransformer`` that runs its own blocks formats each
    output by the parent's ``out_type`` rule (private ``_format_output``), not a copy of it."""
    require_tested_mmpretrain('VisionTransformer._format_output (out_type handling)')
    return backbone._format_output(tokens, patch_grid)


def records_init_info(module: nn.Module) -> bool:
    """Whether mmengine's ``BaseModule.init_weights`` is recording the initialisation of
    ``module`` (it gives every module a private ``_params_init_info`` while it initialises;
    ``update_init_info`` needs it)."""
    require_tested_mmengine('reading BaseModule._params_init_info')
    return hasattr(module, '_params_init_info')
