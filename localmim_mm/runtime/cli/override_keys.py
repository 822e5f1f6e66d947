"""``--cfg-options`` keys that the config does not have are refused with the closest one.

mmengine's ``Config.merge_from_dict`` adds any key it is given, so ``train_dataloder.batch_size=8``
trains at the config's batch size without a word. :func:`check_override_keys` walks each key
through the config before it is merged. A key that is not there is accepted only where it is
meaningful although the config omits it:

* at the top level, an argument of mmengine's ``Runner`` / ``FlexibleRunner`` or a setting the
  Runner and the tools read (``load_from``, ``compile``, ``model_wrapper_cfg``, ...);
* in a dict with a ``type``, an argument of that type's constructor or of one of its base classes
  (looked up in the registries of the config's scope);
* in the dicts whose types mmengine implies (``*_dataloader``: ``torch.utils.data.DataLoader``,
  ``train_cfg`` / ``val_cfg`` / ``test_cfg``: the loops, ``optim_wrapper``: ``OptimWrapper``);
* anywhere inside dicts that are free-form by design (``env_cfg``, ``default_hooks``,
  ``paramwise_cfg``, ``randomness``, ...), and under a dict whose type cannot be resolved.

Anything else raises ``SystemExit`` naming the key and the closest existing names (difflib).
"""
import difflib
import inspect
from typing import Iterable, List, Optional, Set

from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import Registry
from mmengine.runner import (EpochBasedTrainLoop, FlexibleRunner, IterBasedTrainLoop, Runner,
                             TestLoop, ValLoop, set_random_seed)
from torch.utils.data import DataLoader

from .registry_hints import root_registries, scoped_registry

__all__ = ['check_override_keys']

# new keys anywhere below these (settings passed on as they are)
FREE_FORM = ('env_cfg', 'custom_imports', 'paramwise_cfg', 'meta', 'metainfo', 'backend_args',
             'custom_cfg', 'compile', 'strategy', 'model_wrapper_cfg')
# new keys directly in these (a new hook name); their typed entries are checked as usual
OPEN_NAMESPACES = ('default_hooks', )
TOOL_KEYS = ('compile', 'runner_type', 'model_wrapper_cfg', 'custom_imports', 'gpus', 'sync_bn',
             'find_unused_parameters', 'activation_checkpointing', 'efficient_conv_bn_eval')
DATALOADER_KEYS = ('dataset', 'sampler', 'batch_sampler', 'collate_fn', 'num_batch_per_epoch')


def check_override_keys(cfg: Config, options: Optional[dict]) -> None:
    """Raise ``SystemExit`` for the first ``--cfg-options`` key that the config cannot take."""
    for key in options or {}:
        problem = _check_key(cfg, key)
        if problem:
            raise SystemExit(f'--cfg-options {key}=...: {problem}')


def _check_key(cfg: Config, key: str) -> Optional[str]:
    node, path = cfg, []
    for part in key.split('.'):
        where = '.'.join(path) or 'the config'
        if isinstance(node, (list, tuple)):
            if not (part.isdigit() and int(part) < len(node)):
                return f'{where} is a list of {len(node)} entries; index it 0..{len(node) - 1}'
            node = node[int(part)]
        elif not isinstance(node, (dict, Config)):
            return None  # a value that the override replaces
        elif part in node:
            node = node[part]
        elif any(p in FREE_FORM for p in path) or path[-1:] in ([n] for n in OPEN_NAMESPACES):
            return None
        else:
            accepted = _accepted_new_keys(node, path, cfg.get('default_scope'))
            if accepted is None or part in accepted or part.startswith('_'):
                return None
            return _no_such_key(where, part, set(node) | accepted)
        path.append(part)
    return None


def _no_such_key(where: str, part: str, candidates: Set[str]) -> str:
    close = difflib.get_close_matches(part, sorted(candidates), n=3, cutoff=0.6)
    if close:
        return f'{where} has no key {part!r}; did you mean {" or ".join(map(repr, close))}?'
    return (f'{where} has no key {part!r} and none is close; its keys are '
            f'{", ".join(sorted(map(str, candidates)))}')


def _accepted_new_keys(node: dict, path: List[str], scope: Optional[str]) -> Optional[Set[str]]:
    """Names ``node`` may take although absent; None when that cannot be told."""
    if not path:
        return _parameters([Runner, FlexibleRunner]) | set(TOOL_KEYS)
    kind = node.get('type')  # a dict below the top level
    if kind is None:
        return _implied_parameters(path)
    classes = [kind] if inspect.isclass(kind) or callable(kind) else _registered(str(kind),
                                                                                  scope)
    return _parameters(classes) | {'type'} if classes else None


def _implied_parameters(path: List[str]) -> Optional[Set[str]]:
    """Arguments of the type mmengine builds from a top-level dict without ``type``."""
    if len(path) != 1:
        return None
    name = path[0]
    if name.endswith('_dataloader'):
        return _parameters([DataLoader]) | set(DATALOADER_KEYS)
    implied = {'train_cfg': [EpochBasedTrainLoop, IterBasedTrainLoop], 'val_cfg': [ValLoop],
               'test_cfg': [TestLoop], 'optim_wrapper': [OptimWrapper, AmpOptimWrapper],
               'randomness': [set_random_seed]}
    if name in implied:
        return _parameters(implied[name]) | {'type', 'by_epoch', 'constructor', 'paramwise_cfg'}
    if name == 'auto_scale_lr':
        return {'enable', 'base_batch_size'}
    return None


def _registered(name: str, scope: Optional[str]) -> list:
    """Every object registered as ``name`` in the registries of ``scope`` (and their parents)."""
    found = []
    for registry in _scope_registries(scope):
        try:
            obj = registry.get(name)
        except Exception:  # a registry whose lazy imports fail: not ours to judge here
            obj = None
        if obj is not None and obj not in found:
            found.append(obj)
    return found


def _scope_registries(scope: Optional[str]) -> Iterable[Registry]:
    for root in root_registries():
        yield scoped_registry(root, scope) or root


def _parameters(objects: Iterable) -> Set[str]:
    """Named arguments of the objects' constructors (every class of their MRO) or functions."""
    names = set()
    for obj in objects:
        for target in (inspect.getmro(obj) if inspect.isclass(obj) else (obj, )):
            init = target.__init__ if inspect.isclass(target) else target
            if init is object.__init__:
                continue
            try:
                params = inspect.signature(init).parameters.values()
            except (TypeError, ValueError):
                continue
            names.update(p.name for p in params if p.kind not in (p.VAR_POSITIONAL,
                                                                  p.VAR_KEYWORD))
    names.discard('self')
    return names
