"""The mmengine version this layer's uses of mmengine internals were written and tested against.

Each use of a private or internal name sits in ``localmim_mm/runtime`` and calls
:func:`require_tested_mmengine` first, so another mmengine fails loudly instead of misbehaving.
"""
import mmengine

TESTED_MMENGINE = '0.10.7'


def require_tested_mmengine(what: str) -> None:
    if mmengine.__version__ != TESTED_MMENGINE:
        raise RuntimeError(
            f'localmim_mm.runtime: {what} relies on mmengine {TESTED_MMENGINE} internals, but '
            f'mmengine {mmengine.__version__} is installed; install mmengine=={TESTED_MMENGINE} '
            '(requirements.txt)')
