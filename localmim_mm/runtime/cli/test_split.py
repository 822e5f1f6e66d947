"""Which split ``tools/test.py`` evaluates, and ``--cfg-options`` that would not change it.

Many configs write ``test_dataloader = val_dataloader``. Python binds that when the config is
read, so ``--cfg-options val_dataloader.dataset.data_root=...`` later changes only the val loader
and ``tools/test.py`` (which runs the test loop) silently evaluates the original split. Here:

* when the config's test loader (or evaluator) is the val one, ``val_*`` overrides are applied
  to the test one too (the user's evident intent);
* when the config defines its own test loader, ``val_*`` overrides are refused, as are
  overrides of what testing never uses (``train_dataloader``, ``train_cfg``, ``val_cfg``);
* :class:`~localmim_mm.runtime.hooks.EvaluatedSplitHook` logs the dataset root, split and
  number of images evaluated.
"""
import copy
from typing import Dict, List

from mmengine.config import Config
from mmengine.logging import print_log

__all__ = ['merge_test_options']

DERIVED_FROM_VAL = (('val_dataloader', 'test_dataloader'), ('val_evaluator', 'test_evaluator'))
UNUSED_BY_TESTING = ('train_dataloader', 'train_cfg', 'val_cfg')


def _keys_under(options: Dict[str, object], field: str) -> List[str]:
    return [k for k in options if k == field or k.startswith(field + '.')]


def _shown(options: Dict[str, object], keys: List[str], rename=None) -> str:
    """``key=value ...`` as on the command line (``rename``: (old, new) key prefix)."""
    old, new = rename or ('', '')
    return ' '.join(f'{new + k[len(old):] if rename else k}={options[k]}' for k in keys)


def merge_test_options(cfg: Config, options: Dict[str, object]) -> None:
    """Merge ``--cfg-options`` for testing: ``val_*`` overrides reach a test loader / evaluator
    that the config derives from the val one; overrides without effect raise ``SystemExit``."""
    options = dict(options or {})
    unused = [k for field in UNUSED_BY_TESTING for k in _keys_under(options, field)]
    if unused:
        raise SystemExit(f'--cfg-options {_shown(options, unused)}: tools/test.py runs only the '
                         'test loop (test_dataloader, test_evaluator, test_cfg), so these would '
                         'have no effect; drop them')
    derived = {val: cfg.get(val) is not None and cfg.get(val) == cfg.get(test)
               for val, test in DERIVED_FROM_VAL}
    cfg.merge_from_dict(options)
    for val, test in DERIVED_FROM_VAL:
        val_keys = _keys_under(options, val)
        if not val_keys:
            continue
        if not derived[val]:
            raise SystemExit(
                f'--cfg-options {_shown(options, val_keys)}: this config defines its own {test} '
                f'(not {val}), which tools/test.py evaluates, so the override would have no '
                f'effect; write it as {_shown(options, val_keys, (val, test))}')
        cfg[test] = copy.deepcopy(cfg[val])
        cfg.merge_from_dict({k: v for k, v in options.items() if k in _keys_under(options, test)})
        print_log(f'the config derives {test} from {val}: your {val}.* overrides apply to the '
                  'test loop too', logger='current')
