"""A "did you mean" for mistyped registered types (``LocalMIMVit`` -> ``LocalMIMViT``).

mmengine's build raises ``KeyError: 'X is not in the <scope>::<registry> registry ...'`` (wrapped
by every enclosing build). :func:`registry_hints` catches it around the tools' Runner
construction and run, and re-raises it with the closest registered names of that registry,
those its build would also find (its parents') first, then other scopes' (``scope.Name``).
"""
import contextlib
import difflib
import re
from typing import Iterator, List, Optional

import mmengine.registry as mmengine_registry
from mmengine.registry import Registry

__all__ = ['registry_hints', 'close_registered_names', 'UnknownTypeError']

_NOT_REGISTERED = re.compile(r'`?([\w.]+)`? is not in the ([\w-]+)::([\w-]+) registry')


class UnknownTypeError(KeyError):
    """A config names a type that no registry of its scope holds."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


def root_registries() -> List[Registry]:
    """mmengine's root registries (every scope's registries are their descendants)."""
    return [r for r in vars(mmengine_registry).values()
            if isinstance(r, Registry) and r.parent is None]


def scoped_registry(registry: Registry, scope: Optional[str]) -> Optional[Registry]:
    """The descendant of ``registry`` (or itself) whose scope is ``scope``; None if none."""
    if registry.scope == scope:
        return registry
    for child in registry.children.values():
        found = scoped_registry(child, scope)
        if found is not None:
            return found
    return None


def _descendants(registry: Registry) -> Iterator[Registry]:
    yield registry
    for child in registry.children.values():
        yield from _descendants(child)


def _lookup_registry(scope: str, name: str) -> Optional[Registry]:
    for root in root_registries():
        if root.name == name:
            found = scoped_registry(root, scope)
            if found is not None:
                return found
    return None


def close_registered_names(registry: Registry, wanted: str, limit: int = 3) -> List[str]:
    """Registered names that ``wanted`` was probably meant to be, best first."""
    chain, node = [], registry
    while node is not None:
        chain.append(node)
        node = node.parent
    reachable = sorted({key for r in chain for key in r.module_dict})
    root = chain[-1]
    elsewhere = sorted({f'{r.scope}.{key}' for r in _descendants(root) if r not in chain
                        for key in r.module_dict})
    # name as the config would write it -> the part compared with ``wanted``
    candidates = {n: n for n in reachable}
    candidates.update({n: n.split('.', 1)[1] for n in elsewhere if n not in candidates})
    same_case = [n for n, bare in candidates.items() if bare.lower() == wanted.lower()]
    if same_case:
        return same_case[:limit]
    scored = []
    for name, bare in candidates.items():
        ratio = difflib.SequenceMatcher(None, wanted.lower(), bare.lower()).ratio()
        if ratio >= 0.7:
            scored.append((-ratio, name not in reachable, name))
    return [name for _, _, name in sorted(scored)[:limit]]


def hint_for(message: str) -> Optional[str]:
    """The "did you mean" sentence for an mmengine "not in the registry" message, or None."""
    match = _NOT_REGISTERED.search(message)
    if not match:
        return None
    wanted, scope, name = match.groups()
    registry = _lookup_registry(scope, name)
    if registry is None:
        return None
    close = close_registered_names(registry, wanted)
    if not close:
        return (f'type={wanted!r} is not registered in the {scope}::{name} registry and no '
                'registered name is close; check the spelling and custom_imports')
    options = ' or '.join(repr(c) for c in close)
    return f'type={wanted!r} is not registered in the {scope}::{name} registry: did you mean ' \
           f'{options}?'


@contextlib.contextmanager
def registry_hints():
    """Re-raise mmengine's "not in the registry" ``KeyError`` with the closest names."""
    try:
        yield
    except KeyError as err:
        hint = hint_for(str(err))
        if hint is None:
            raise
        raise UnknownTypeError(f'{hint}\n(mmengine: {err})') from err
