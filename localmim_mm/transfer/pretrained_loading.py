"""Load pre-trained weights into a module and say exactly what matched (loudly).

Silent partial loads are the usual way transfer goes wrong (a wrong prefix loads nothing, a
ViT-L file "loads" into a ViT-B with every tensor skipped). :func:`load_pretrained` therefore

* logs how many of the module's tensors were loaded, which were missing and which checkpoint
  tensors were not used;
* raises if nothing matched, if any tensor has another shape than the module's, or if a
  learnable parameter of the module is missing from the checkpoint, unless its name matches one
  of ``allow_missing`` (the parts that are new downstream: a fine-tune ``ln2``, a head, relative
  position biases, ...). Missing buffers (e.g. ``relative_position_index``, recomputed by the
  model) are logged only. The error is one bounded summary: how many tensors match, are
  missing, have another shape, the first few of each, and the likely cause (another
  architecture, width or depth); the module is left unchanged.

Load-time hooks of the module run as usual (e.g. mmpretrain's ``pos_embed`` and
``relative_position_bias_table`` resizing), so a resizable tensor of another size is fine.
"""
import fnmatch
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch
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
    """Load, or raise one bounded :class:`FitReport` summary and leave ``module`` unchanged."""
    name = type(module).__name__
    own = module.state_dict()
    params = {n for n, _ in module.named_parameters()}
    missing = [k for k in own if k not in state_dict]
    fit = FitReport(source, name, own, state_dict, missing)
    if not fit.matched_keys():
        raise ValueError(
            f'LoudPretrained: no tensor of {source} matched {name}. Checkpoint keys look like '
            f'{_short(sorted(state_dict))}; the module expects {_short(list(own))}.'
            ' Check init_cfg.prefix (backbone. for a full LocalMIM file, None for a '
            'backbone-only one)')
    not_allowed = [k for k in missing if k in params and not _allowed(k, allow_missing)]
    if not_allowed and not fit.naive_reshaped():
        raise ValueError(fit.summary(not_allowed, {}, _MISSING_ADVICE))
    backup = {k: v.clone() for k, v in own.items() if k in state_dict} \
        if fit.naive_reshaped() else {}  # copies taken only when the load may fail part-way
    reshaped = _try_load(module, state_dict)
    if reshaped or not_allowed:
        with torch.no_grad():
            for k, v in backup.items():
                own[k].copy_(v)
        raise ValueError(fit.summary(not_allowed, reshaped, _ARCHITECTURE_ADVICE))
    report = LoadReport(
        source=source, module=name,
        missing_allowed=[k for k in missing if k in params and _allowed(k, allow_missing)],
        missing_buffers=[k for k in missing if k not in params],
        unexpected=[k for k in state_dict if k not in own])
    report.loaded = [k for k in own if k not in missing]
    return report


_MISSING_ADVICE = ('If the missing parameters are new in the downstream model, list them in '
                   'init_cfg.allow_missing (fnmatch patterns, e.g. "ln2.*"); otherwise the '
                   'checkpoint is not a pre-training of this architecture.')
_ARCHITECTURE_ADVICE = ('Nothing was loaded; use the config that matches the checkpoint (or the '
                        'checkpoint that matches the config).')
_SIZE_MISMATCH = re.compile(r'size mismatch for ([^:]+): copying a param with shape '
                            r'torch\.Size\(\[([\d, ]*)\]\) from checkpoint, the shape in '
                            r'current model is torch\.Size\(\[([\d, ]*)\]\)')
_BLOCK = re.compile(r'(?:^|\.)(layers|blocks|stages)\.(\d+)\.')


def _try_load(module: nn.Module, state_dict: StateDict) -> dict:
    """Load ``state_dict`` (the module's load hooks run, e.g. ``pos_embed`` resizing); the
    tensors torch refused for their shape as ``{name: (file shape, model shape)}``."""
    try:
        module.load_state_dict(dict(state_dict), strict=False)
    except RuntimeError as err:
        reshaped = {m.group(1): (_shape(m.group(2)), _shape(m.group(3)))
                    for m in _SIZE_MISMATCH.finditer(str(err))}
        if not reshaped:
            raise
        return reshaped
    return {}


def _shape(text: str) -> tuple:
    return tuple(int(d) for d in text.split(',') if d.strip())


class FitReport:
    """How a checkpoint fits a module: counts, the first names, and the likely cause."""

    def __init__(self, source: str, module: str, own: StateDict, state_dict: StateDict,
                 missing: List[str]) -> None:
        self.source, self.module = source, module
        self.own, self.state_dict, self.missing = own, state_dict, missing

    def naive_reshaped(self) -> List[str]:
        return [k for k, v in self.own.items()
                if k in self.state_dict and tuple(self.state_dict[k].shape) != tuple(v.shape)]

    def matched_keys(self) -> List[str]:
        return [k for k in self.own if k in self.state_dict]

    def summary(self, not_allowed: List[str], reshaped: dict, advice: str) -> str:
        unexpected = [k for k in self.state_dict if k not in self.own]
        matched = len(self.matched_keys()) - len(reshaped)
        lines = [f'LoudPretrained: {self.source} does not fit {self.module}: {matched} of '
                 f'{len(self.own)} tensors match, {len(self.missing)} are missing from the file'
                 f' ({len(not_allowed)} of them learnable and not in allow_missing), '
                 f'{len(reshaped)} have another shape; {len(unexpected)} tensors of the file '
                 f'are not used. Likely cause: {self.likely_cause(reshaped, unexpected)}. '
                 f'{advice}']
        shapes = [f'{k} (file {list(a)}, model {list(b)})' for k, (a, b) in reshaped.items()]
        for label, names in (('another shape', shapes), ('missing', not_allowed),
                             ('not used', unexpected)):
            if names:
                lines.append(f'  {label}: {_short(names, 5)}')
        return '\n'.join(lines)

    def likely_cause(self, reshaped: dict, unexpected: List[str]) -> str:
        if unexpected and len(self.missing) * 2 >= len(self.own):
            return (f'another architecture: {len(self.missing)} of the model\'s '
                    f'{len(self.own)} tensors are not in the file, which has others (e.g. '
                    f'{_short(unexpected, 2)}; the model expects e.g. {_short(self.missing, 2)})')
        width = _common_width_change(reshaped.values())
        if width:
            return (f'another width: the file has {width[0]} channels where the model has '
                    f'{width[1]} (e.g. another embed_dims)')
        depth = (_depth(self.state_dict), _depth(self.own))
        if None not in depth and depth[0] != depth[1]:
            return f'another depth: the file has {depth[0]} blocks, the model {depth[1]}'
        return 'another variant of the architecture (see the tensors listed below)'


def _depth(state: StateDict):
    indices = [int(m.group(2)) for k in state for m in [_BLOCK.search(k)] if m]
    return max(indices) + 1 if indices else None


def _common_width_change(shapes) -> Optional[tuple]:
    """The (file, model) size pair that most mismatched dimensions show, if it is most of them."""
    pairs = [(a, b) for file, model in shapes if len(file) == len(model)
             for a, b in zip(file, model) if a != b]
    if not pairs:
        return None
    pair, count = Counter(pairs).most_common(1)[0]
    return pair if count * 2 >= len(pairs) else None


def _allowed(key: str, patterns: List[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _short(names: Sequence[str], limit: int = 8) -> str:
    names = list(names)
    more = f' ... (+{len(names) - limit} more)' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more
