"""The package's layers (docs/design.md, "Layers"): each imports only the layers below it (and
``runtime.compat``, the version-checked access to the anchors' private names, which imports
nothing of the package), and only the runtime layer touches mmengine's or mmpretrain's private
names.

Both are read from the source with ``ast``: the import rule from every ``import`` statement, the
private names from mmengine's and mmpretrain's own source (every ``_name`` they define as a
method, attribute or module-level name), so the test knows nothing of how the package is written.
"""
import ast
import os
import os.path as osp
from typing import Iterator, Set, Tuple

import mmengine
import mmpretrain
import pytest

import localmim_mm

PACKAGE = osp.dirname(localmim_mm.__file__)

# Layer of each top-level part of the package, lowest first; a module may import its own layer
# and the layers below it.
LAYERS = {
    'method': ['models', 'datasets', 'version'],
    'checkpoint I/O': ['transfer'],
    'runtime': ['runtime'],
    'training aids': ['engine', 'evaluation', 'analysis', 'zoo', 'det', 'seg'],
}
ORDER = list(LAYERS)
LAYER_OF = {part: layer for layer, parts in LAYERS.items() for part in parts}
EVERY_LAYER_MAY_IMPORT = 'localmim_mm.runtime.compat'



def package_modules() -> Iterator[Tuple[str, str]]:
    """(dotted module name, path) of every module of the package (``.mim`` copies left out)."""
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if not d.startswith(('.', '__'))]
        for name in files:
            if name.endswith('.py'):
                path = osp.join(root, name)
                rel = osp.relpath(path, osp.dirname(PACKAGE))[:-3].replace(os.sep, '.')
                yield rel.removesuffix('.__init__'), path


def imported_modules(module: str, path: str) -> Iterator[Tuple[int, str]]:
    """(line, absolute dotted name) of every ``localmim_mm`` module that ``module`` imports."""
    is_package = path.endswith('__init__.py')
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split('.')
                base = parts[:len(parts) - node.level + (1 if is_package else 0)]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:  # `from . import runtime` imports a module too
                yield node.lineno, f'{target}.{alias.name}'


def layer_of(dotted: str):
    parts = dotted.split('.')
    if parts[0] != 'localmim_mm':
        return None
    if len(parts) == 1:
        return 'package'
    return LAYER_OF.get(parts[1], 'unknown' if parts[1] != '__version__' else 'method')


def test_every_part_of_the_package_has_a_layer():
    parts = {osp.splitext(n)[0] for n in os.listdir(PACKAGE)
             if not n.startswith(('.', '__')) and (n.endswith('.py') or osp.isdir(
                 osp.join(PACKAGE, n)))}
    assert parts == set(LAYER_OF), f'parts without a layer: {parts - set(LAYER_OF)}'


def test_each_layer_imports_only_itself_and_the_layers_below():
    wrong = []
    for module, path in package_modules():
        mine = layer_of(module)
        if mine == 'package':
            continue  # localmim_mm/__init__.py registers everything
        for line, target in imported_modules(module, path):
            theirs = layer_of(target)
            if theirs is None or target.startswith(EVERY_LAYER_MAY_IMPORT):
                continue
            if theirs in ('package', 'unknown') or ORDER.index(theirs) > ORDER.index(mine):
                wrong.append(f'{path}:{line}: {mine} imports {target} ({theirs})')
    assert not wrong, '\n'.join(wrong)


def private_names(package) -> Set[str]:
    """Every ``_name`` (not ``__dunder__``) a package defines: methods, functions, classes,
    module-level names and ``self._x`` attributes."""
    names = set()
    root = osp.dirname(package.__file__)
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith('.py'):
                names |= defined_names(ast.parse(open(osp.join(folder, name), 'rb').read()))
    return {n for n in names if n.startswith('_') and not n.startswith('__')}


@pytest.fixture(scope='module')
def anchors_private() -> Set[str]:
    return private_names(mmengine) | private_names(mmpretrain)


def defined_names(tree: ast.AST) -> Set[str]:
    """Names a module defines itself (its ``_helpers``, ``self._state``, module-level names)."""
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
    return own


def overrides(tree: ast.AST) -> Iterator[Tuple[int, str]]:
    """``def _name`` in a class that has a base class: a possible override of a private."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.bases:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name.startswith('_') \
                        and not item.name.startswith('__'):
                    yield item.lineno, item.name


def by_string(node: ast.AST):
    """The attribute name of ``getattr`` / ``hasattr`` / ``setattr`` / ``delattr(obj, 'name')``."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in ('getattr', 'hasattr', 'setattr', 'delattr')
            and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)):
        return node.args[1].value
    return None


def private_uses(path: str, anchors: Set[str]) -> Iterator[str]:
    tree = ast.parse(open(path).read())
    own = defined_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in anchors and node.attr not in own:
            yield f'{path}:{node.lineno}: reads {node.attr}'
        elif by_string(node) in anchors:
            yield f'{path}:{node.lineno}: names {by_string(node)!r}'
        elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith(
                ('mmengine', 'mmpretrain')):
            yield from (f'{path}:{node.lineno}: imports {a.name}' for a in node.names
                        if a.name.startswith('_'))
    for line, name in overrides(tree):
        if name in anchors:
            yield f'{path}:{line}: defines {name}, a private name of mmengine / mmpretrain'


def test_only_the_runtime_touches_anchors_privates(anchors_private):
    found = [use for module, path in package_modules() if layer_of(module) != 'runtime'
             for use in private_uses(path, anchors_private)]
    assert not found, '\n'.join(found)


def test_the_scan_finds_a_private_use(tmp_path, anchors_private):
    """The scan above is not blind: an override and a read of mmengine privates are found."""
    path = tmp_path / 'bad.py'
    path.write_text('from mmengine.hooks import CheckpointHook\n\n\n'
                    'class Bad(CheckpointHook):\n'
                    '    def _save_checkpoint_with_step(self, runner, step, meta):\n'
                    '        return runner._compile\n')
    found = list(private_uses(str(path), anchors_private))
    assert len(found) == 2 and 'defines _save_checkpoint_with_step' in found[1]
    path.write_text("flag = hasattr(object(), '_params_init_info')\n")
    assert list(private_uses(str(path), anchors_private)) == [
        f"{path}:1: names '_params_init_info'"]


def test_a_version_other_than_the_tested_one_fails_loudly(monkeypatch):
    from localmim_mm.runtime import compat
    from localmim_mm.runtime.hooks import AtomicCheckpointHook
    monkeypatch.setattr(mmengine, '__version__', '0.0.1')
    with pytest.raises(RuntimeError, match=r'mmengine 0\.10\.7 internals, but mmengine 0\.0\.1'):
        AtomicCheckpointHook(interval=1)
    monkeypatch.setattr(mmpretrain, '__version__', '0.0.2')
    with pytest.raises(RuntimeError, match=r'install mmpretrain==1\.2\.0'):
        compat.vit_formatted_output(None, None, None)


def test_the_runtime_checks_the_mmengine_version_where_it_touches_privates(anchors_private):
    """Every runtime module that touches a private checks the version it was tested with."""
    unchecked = []
    for module, path in package_modules():
        if layer_of(module) == 'runtime' and list(private_uses(path, anchors_private)):
            if 'require_tested_mm' not in open(path).read():
                unchecked.append(path)
    assert not unchecked, unchecked
