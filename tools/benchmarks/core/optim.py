"""A recipe's optimiser wrapper config for the device at hand: AMP (``AmpOptimWrapper``) where
the run is on a GPU, float32 (``OptimWrapper``: mmengine's ``AmpOptimWrapper`` needs a GPU)
elsewhere; optimiser, ``paramwise_cfg`` and constructor stay the recipe's."""
from typing import Optional, Tuple


def device_optim_wrapper(wrapper: dict, amp: bool) -> Tuple[dict, Optional[str]]:
    """A copy of the recipe's ``optim_wrapper`` for ``amp`` or float32, and a note when its type
    had to change."""
    wrapper = dict(wrapper)
    recipe_type = wrapper.get('type', 'OptimWrapper')
    if amp and recipe_type != 'AmpOptimWrapper':
        wrapper.update(type='AmpOptimWrapper', loss_scale='dynamic')
        return wrapper, f'recipe wrapper {recipe_type}, run as AmpOptimWrapper'
    if not amp and recipe_type == 'AmpOptimWrapper':
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            wrapper.pop(key, None)
        wrapper['type'] = 'OptimWrapper'
        return wrapper, 'recipe wrapper AmpOptimWrapper, run as float32 OptimWrapper'
    return wrapper, None
