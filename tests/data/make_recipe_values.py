"""Record the recipe-table values of every runnable config under configs/ as a JSON snapshot.

    python -m tests.data.make_recipe_values tests/data/recipe_values_<commit>.json
    python -m tests.data.make_recipe_values --full CONFIG   # the digested sections, in full
    python -m tests.data.make_recipe_values --repo DIR OUT  # the configs of another tree

Each config (every ``configs/**/*.py`` outside ``configs/_base_/``) is resolved with mmengine's
``Config.fromfile`` and recorded as:

* ``optim_wrapper``: the whole resolved wrapper (type, loss scale, accumulation, constructor,
  optimizer lr / betas / weight decay, paramwise settings with the layer decay rate);
* ``batch_size_per_gpu``, ``gpus`` (the GPU count a pre-training recipe is written for, read by
  localmim_mm/analysis/memory.py), ``train_cfg`` (epochs or iterations), ``auto_scale_lr``;
* ``param_scheduler``: every scheduler with the fields mmengine fills in when they are absent
  (``begin`` 0, ``by_epoch`` True, ``end`` = the train loop's length as the runner sets it, and
  a cosine's ``T_max`` = ``end - begin``), so a config that leaves a derived value out records
  the same entry as one that spells it;
* ``param_scheduler_iters``: the same schedulers as mmengine builds them for a run of
  ``EPOCH_LENGTH`` iterations per epoch (``convert_to_iter_based`` applied), read back from the
  built scheduler objects: warm-up and cosine boundaries, ``T_max``, ``eta_min``, factors;
* ``model``: the recipe fields of the model (drop path, mask ratio, taps, scales, targets, ...)
  by their dotted path, and ``model_params``: the number of parameters of the model built from
  the config (its weights on the ``meta`` device: no memory, no initialisation cost);
* ``digests``: a SHA-256 of each whole section a run consumes (model, data, loops, evaluators,
  optimiser, schedule, runner strategy), so a change outside the named fields is caught too.

The snapshot taken from a tree is the independent reference for later changes of the configs:
tests/test_config_values.py resolves the configs again and compares.
"""
import argparse
import copy
import glob
import hashlib
import importlib
import json
import math
import os.path as osp

import torch
from torch.overrides import TorchFunctionMode

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
EPOCH_LENGTH = 100  # iterations per epoch for the built schedulers (any positive number)

# Whole sections a run consumes, digested. Runtime sections (hooks, logging, environment,
# custom_imports, default_scope) are left out: they are the runtime's, not the recipe's.
SECTIONS = ('model', 'data_preprocessor', 'train_dataloader', 'val_dataloader',
            'test_dataloader', 'val_evaluator', 'test_evaluator', 'train_cfg', 'val_cfg',
            'test_cfg', 'optim_wrapper', 'param_scheduler', 'auto_scale_lr', 'runner_type',
            'strategy', 'compile', 'tta_model', 'tta_pipeline')

# Model fields of the recipe tables, recorded wherever they stand in the model.
MODEL_FIELDS = ('type', 'arch', 'img_size', 'patch_size', 'window_size', 'drop_path_rate',
                'mask_ratio', 'mask_unit', 'mask_shared', 'num_windows', 'out_indices',
                'scales', 'embed_dims', 'num_heads', 'depth', 'target_channels', 'nbins',
                'cell_sizes', 'hog_bias', 'norm_pix', 'num_classes', 'label_smooth_val',
                'alpha', 'final_norm', 'out_type', 'frozen_stages', 'global_attn_indexes',
                'layer_scale_init_value', 'input_size')

COSINE = ('CosineAnnealingLR', 'CosineAnnealingParamScheduler', 'CosineAnnealingMomentum')
SCHEDULER_ATTRS = ('begin', 'end', 'by_epoch', 'T_max', 'eta_min', 'eta_min_ratio',
                   'start_factor', 'end_factor', 'gamma', 'power', 'milestones')


def config_paths(repo=REPO):
    """Every runnable config, relative to the repo, sorted."""
    paths = glob.glob(osp.join(repo, 'configs', '**', '*.py'), recursive=True)
    rel = (osp.relpath(p, repo) for p in paths)
    return sorted(p for p in rel if not p.startswith(osp.join('configs', '_base_') + osp.sep))


def plain(value):
    """JSON-ready copy: ConfigDicts and tuples become dicts and lists; other objects, strings."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return repr(value)


def digest(value) -> str:
    """SHA-256 of a section, floats to 12 significant digits (the same value written
    ``2e-4 * 2048 / 256`` or ``1.6e-3`` digests alike)."""

    def rounded(v):
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        if isinstance(v, list):
            return [rounded(x) for x in v]
        if isinstance(v, float):
            return float(f'{v:.12g}')
        return v

    text = json.dumps(rounded(plain(value)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def loop_length(train_cfg, by_epoch: bool):
    train_cfg = train_cfg or {}
    return train_cfg.get('max_epochs') if by_epoch else train_cfg.get('max_iters')


def normalized_schedulers(cfg):
    """The schedulers with mmengine's defaults written in (see the module docstring)."""
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    out = []
    for scheduler in schedulers:
        s = plain(scheduler)
        s.setdefault('begin', 0)
        s.setdefault('by_epoch', True)
        if 'end' not in s and loop_length(cfg.get('train_cfg'), s['by_epoch']) is not None:
            s['end'] = loop_length(cfg.get('train_cfg'), s['by_epoch'])  # Runner's default
        if s.get('type') in COSINE and s.get('T_max') is None:
            s['T_max'] = s['end'] - s['begin']  # CosineAnnealingParamScheduler's default
        out.append(s)
    return out


def built_schedulers(cfg):
    """The schedulers as mmengine builds them for EPOCH_LENGTH iterations per epoch."""
    from mmengine.registry import PARAM_SCHEDULERS

    lr = cfg.get('optim_wrapper', {}).get('optimizer', {}).get('lr', 1.0)
    out = []
    for s in normalized_schedulers(cfg):
        s = dict(s)
        if s['type'] in COSINE and s['T_max'] == s['end'] - s['begin']:
            s['T_max'] = None  # mmengine derives it from the (converted) boundaries
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
        built = PARAM_SCHEDULERS.build(
            s, default_args=dict(optimizer=optimizer, epoch_length=EPOCH_LENGTH))
        entry = {'type': type(built).__name__}
        for attr in SCHEDULER_ATTRS:
            if hasattr(built, attr):
                value = getattr(built, attr)
                entry[attr] = sorted(value) if attr == 'milestones' else plain(value)
        out.append(entry)
    return out


def model_fields(model, prefix='model'):
    """``{dotted path: value}`` for the MODEL_FIELDS keys anywhere in the model (not inside
    ``init_cfg``, which names the weights, not the recipe; ``type`` of the model and its direct
    parts only)."""
    found = {}
    if isinstance(model, dict):
        for key, value in model.items():
            path = f'{prefix}.{key}'
            if key == 'init_cfg':
                continue
            if key == 'type' and path.count('.') > 2:
                continue  # the types of deeper parts (losses, assigners, ...): in the digest
            if key in MODEL_FIELDS and (key == 'arch' or not isinstance(value, dict)):
                found[path] = plain(value)
            else:
                found.update(model_fields(value, path))
    elif isinstance(model, (list, tuple)):
        for i, value in enumerate(model):
            found.update(model_fields(value, f'{prefix}.{i}'))
    return found


class WeightsOnMeta(TorchFunctionMode):
    """Tensors allocated without a device go to ``meta`` (parameters and buffers: shapes only);
    index and schedule helpers made with ``arange`` / ``linspace`` stay real, so code that reads
    them (``.item()``) still runs."""
    ALLOCATORS = (torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn,
                  torch.empty_strided)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in self.ALLOCATORS and kwargs.get('device') is None:
            kwargs['device'] = 'meta'
        return func(*args, **kwargs)


def build_model(cfg):
    """The config's model, built by the registry of its ``default_scope`` (mmpretrain, mmdet or
    mmseg), weights on ``meta``."""
    from mmengine.registry import init_default_scope
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    models = importlib.import_module(f'{scope}.registry').MODELS
    with WeightsOnMeta():
        return models.build(copy.deepcopy(cfg.model))  # building edits some configs in place


def recipe_values(cfg) -> dict:
    """The recorded values of one resolved config."""
    train_dataloader = cfg.get('train_dataloader') or {}
    sections = {k: cfg.get(k) for k in SECTIONS if k in cfg}
    sections['param_scheduler'] = normalized_schedulers(cfg)
    return {
        'optim_wrapper': plain(cfg.get('optim_wrapper')),
        'batch_size_per_gpu': train_dataloader.get('batch_size'),
        'gpus': cfg.get('gpus'),
        'train_cfg': plain(cfg.get('train_cfg')),
        'auto_scale_lr': plain(cfg.get('auto_scale_lr')),
        'param_scheduler': normalized_schedulers(cfg),
        'param_scheduler_iters': built_schedulers(cfg),
        'model': model_fields(plain(cfg.get('model'))),
        'model_params': sum(p.numel() for p in build_model(cfg).parameters()),
        'digests': {k: digest(v) for k, v in sorted(sections.items())},
    }


def load(path, repo=REPO):
    from mmengine.config import Config
    return Config.fromfile(osp.join(repo, path))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out', nargs='?', help='write the snapshot of every config here')
    parser.add_argument('--repo', default=REPO,
                        help='read the configs of this tree (e.g. an older commit unpacked with '
                        '`git archive COMMIT configs | tar -x -C DIR`); default: this one')
    parser.add_argument('--full', metavar='CONFIG',
                        help='print the digested sections of one config in full, to diff')
    args = parser.parse_args()
    import localmim_mm  # noqa: F401  (the plugin's registered names, as the configs import it)
    if args.full:
        cfg = load(args.full, args.repo)
        sections = {k: plain(cfg.get(k)) for k in SECTIONS if k in cfg}
        sections['param_scheduler'] = normalized_schedulers(cfg)
        print(json.dumps(sections, indent=1, sort_keys=True))
        return
    if not args.out:
        parser.error('give the output file (or --full CONFIG)')
    snapshot = {path: recipe_values(load(path, args.repo)) for path in config_paths(args.repo)}
    with open(args.out, 'w') as f:
        json.dump(snapshot, f, indent=1, sort_keys=True)
        f.write('\n')
    print(f'{len(snapshot)} configs -> {args.out}')


if __name__ == '__main__':
    main()
