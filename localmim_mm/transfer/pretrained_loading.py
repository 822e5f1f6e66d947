"""Load pre-trained weights into a module and say exactly what matched (loudly).

Silent partial loads are the usual way transfer goes wrong (a wrong prefix loads nothing, a
ViT-L file "loads" into a ViT-B with every tensor skipped). :func:`load_pretrained` therefore

* logs how many of the module's tensors were loaded, which were missing and which checkpoint
  tensors were not used;
* raises if nothing matched, if any tensor has another shape than the module's (listing them),
  or if a learnable parameter of the module is missing from the checkpoint, unless its name
  matches one of ``allow_missing`` (the parts that are new downstream: a fine-tune ``ln2``, a
  head, relative position biases, ...). Missing buffers (e.g. ``relative_position_index``,
  recomputed by the model) are logged only.

Load-time hooks of the module run as usual (e.g. mmpretrain's ``pos_embed`` and
``relative_position_bias_table`` resizing), so a resizable tensor of another size is fine.
"""
import fnmatch
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch.nn as nn
from mmengine.logging import print_log

from .checkpoint_io import StateDict, model_state_dict, read_checkpoint, select_prefix


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did."""
    source: str
    module: str
    loaded: List[str] = field(default_factory=list)
    missing_allowed: List[str] = field(default_factory=list)
    missing_buffers: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)

    def summary(self) -> str:
        total = len(self.loaded) + len(self.missing_allowed) + len(self.missing_buffers)
        lines = [f'LoudPretrained: loaded {len(self.loaded)} of {total} tensors of '
                 f'{self.module} from {self.source}']
        for label, names in (('new (allowed missing)', self.missing_allowed),
                             ('buffers not in the checkpoint (recomputed)', self.missing_buffers),
                             ('checkpoint tensors not used', self.unexpected)):
            if names:
                lines.append(f'  {label}: {len(names)}: {_short(names)}')
        return '\n'.join(lines)


def load_pretrained(module: nn.Module,
                    checkpoint: str,
                    prefix: Optional[str] = None,
                    allow_missing: Sequence[str] = (),
                    map_location: str = 'cpu',
                    logger: str = 'current') -> LoadReport:
    """Load ``checkpoint`` (runner, published or backbone-only file) into ``module``.

    Args:
        module: The module to initialise (e.g. a backbone).
        checkpoint: Path of the checkpoint file.
        prefix: Take only the keys starting with it and strip it (``'backbone.'`` for a full
            LocalMIM checkpoint); None uses every key (a backbone-only file).
        allow_missing: ``fnmatch`` patterns of the module's parameter names that may be absent
            from the checkpoint (e.g. ``['ln2.*']``).
    Returns:
        The :class:`LoadReport` (also logged).
    """
    if not checkpoint:
        raise ValueError(
            'LoudPretrained: no checkpoint given (init_cfg.checkpoint is empty); pass the '
            'pre-trained file, e.g. --cfg-options model.backbone.init_cfg.checkpoint=PATH')
    source = f'{checkpoint!r}' + (f' (prefix {prefix!r})' if prefix else '')
    ckpt_state, _ = model_state_dict(read_checkpoint(checkpoint, map_location), checkpoint)
    state_dict = select_prefix(ckpt_state, prefix, checkpoint)
    report = _load_and_check(module, state_dict, source, list(allow_missing))
    print_log(report.summary(), logger=logger)
    return report


def _load_and_check(module: nn.Module, state_dict: StateDict, source: str,
                    allow_missing: List[str]) -> LoadReport:
    name = type(module).__name__
    try:
        result = module.load_state_dict(dict(state_dict), strict=False)
    except RuntimeError as err:
        if 'size mismatch' not in str(err):
            raise
        count = str(err).count('size mismatch')
        raise ValueError(
            f'LoudPretrained: {count} tensors of {source} have another shape than in {name} '
            f'(another architecture? e.g. a ViT-L file for a ViT-B model). Use the config that '
            f'matches the checkpoint.\n{err}') from err
    params = {n for n, _ in module.named_parameters()}
    missing = list(result.missing_keys)
    report = LoadReport(
        source=source, module=name,
        missing_allowed=[k for k in missing if k in params and _allowed(k, allow_missing)],
        missing_buffers=[k for k in missing if k not in params],
        unexpected=list(result.unexpected_keys))
    not_allowed = [k for k in missing if k in params and not _allowed(k, allow_missing)]
    report.loaded = [k for k in module.state_dict() if k not in missing]
    if not report.loaded:
        raise ValueError(
            f'LoudPretrained: no tensor of {source} matched {name}. Checkpoint keys look like '
            f'{_short(sorted(state_dict))}; the module expects {_short(list(module.state_dict()))}.'
            ' Check init_cfg.prefix (backbone. for a full LocalMIM file, None for a '
            'backbone-only one)')
    if not_allowed:
        raise ValueError(
            f'LoudPretrained: {len(not_allowed)} parameters of {name} are not in {source}: '
            f'{_short(not_allowed, 20)}. If they are new in the downstream model, list them in '
            'init_cfg.allow_missing (fnmatch patterns, e.g. "ln2.*"); otherwise the checkpoint '
            'is not a pre-training of this architecture')
    return report


def _allowed(key: str, patterns: List[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _short(names: Sequence[str], limit: int = 8) -> str:
    names = list(names)
    more = f' ... (+{len(names) - limit} more)' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more
