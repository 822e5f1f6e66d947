"""Output files of a benchmark: ``OUT_DIR/NAME[_TAG].json`` and ``.md`` (the provenance header on
top of the markdown, :mod:`.provenance`)."""
import json
import os
import os.path as osp
from typing import Callable, Optional


def output_stem(out_dir: str, name: str, tag: Optional[str]) -> str:
    """``out_dir/name`` or ``out_dir/name_tag`` (the path without extension)."""
    if tag and not all(c.isalnum() or c in '-_.' for c in tag):
        raise ValueError(f'--tag={tag!r} may contain only letters, digits, "-", "_" and "."')
    return osp.join(out_dir, f'{name}_{tag}' if tag else name)


def write_json(path: str, result: dict, default: Optional[Callable] = None) -> None:
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    with open(path, 'w') as f:
        json.dump(result, f, indent=2, default=default)


def write_outputs(stem: str, result: dict, markdown: str,
                  default: Optional[Callable] = None) -> None:
    """``stem.json`` (``default``: as ``json.dump``'s) and ``stem.md``; prints the markdown."""
    write_json(stem + '.json', result, default)
    with open(stem + '.md', 'w') as f:
        f.write(markdown)
    print(markdown)
    print(f'wrote {stem}.json and {stem}.md')
