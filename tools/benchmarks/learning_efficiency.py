#!/usr/bin/env python
"""Accuracy per pre-training wall-clock: LocalMIM (HOG, pixel) vs mmpretrain's MAE (and LoMaR).

    # pre-train every method for 1x, 2x, 3x a base budget, then evaluate every checkpoint
    python tools/benchmarks/learning_efficiency.py run --data-root DIR --out-dir OUT \
        [--budget-minutes 4] [--archive cifar10_jpeg.tar.gz --cache-dir /tmp/lme] [--quick]
    # evaluate any checkpoint(s) of this script, or any model config + checkpoint, on any
    # image-folder dataset (DIR/train/<class>/*, DIR/test/<class>/*)
    python tools/benchmarks/learning_efficiency.py evaluate --data-root DIR CKPT [CKPT ...] \
        [--config CFG] [--out-dir OUT]

Every method pre-trains the SAME encoder (ViT: 64 px inputs, patch 8, width 192, 8 blocks,
3 heads, mask ratio 0.75) with the SAME loop: AdamW (0.9, 0.95), weight decay 0.05 (none on
biases, norms, tokens), lr = blr x batch / 256, linear warm-up over the first 5 % of the longest
budget and half-cycle cosine to 1e-6 at its end, both driven by the method's own training clock,
float32. Only the method's part differs (decoders and targets of LocalMIM, MAE's decoder).
The methods train interleaved in one process (one step of each in turn), each on the same
sequence of augmented batches (RandomResizedCrop scale 0.2-1 + horizontal flip), and each
method's clock sums only its own steps (preprocessing, forward, backward, optimiser; not the
augmentation, which is identical for all, nor checkpointing or evaluation). A checkpoint is saved
when a method's clock first reaches k x base budget.

Evaluation (identical for every method and checkpoint): the encoder's unmasked forward, last block
output averaged over patch tokens (before any final norm), then k-NN (k=20, cosine, weighted
votes, temperature 0.07) and a linear probe (standardised features, one linear layer) trained on
the train split and scored on the test split.
"""
import argparse
import copy
import json
import math
import os
import os.path as osp
import sys
import tarfile
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import localmim_mm  # noqa: E402,F401  (registers the LocalMIM modules)
from localmim_mm.evaluation import (extract_features, knn_accuracy,  # noqa: E402
                                    linear_probe_accuracy, load_image_folder)
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
# Images arrive as RGB uint8, so the preprocessor only normalises.
PREPROCESSOR = dict(type='SelfSupDataPreprocessor', mean=MEAN, std=STD, to_rgb=False)
IMG_SIZE, PATCH = 64, 8
ENCODER = dict(embed_dims=192, num_layers=8, num_heads=3, feedforward_channels=768)
TAPS = [1, 3, 5, 7]
CELLS = [2, 4, 8, 16]  # patch 8 at scales 4, 2, 1, 0.5
LOMAR_CONFIG = 'configs/_base_/models/lomar_vit-base-p16.py'


# --------------------------------------------------------------------------- the methods
def localmim(target: str) -> dict:
    generator = (dict(type='MultiScaleHOGGenerator', nbins=9, cell_sizes=CELLS)
                 if target == 'hog' else dict(type='MultiScalePixelGenerator', cell_sizes=CELLS))
    channels = 27 if target == 'hog' else [3 * k * k for k in CELLS]
    return dict(
        type='LocalMIM', data_preprocessor=PREPROCESSOR,
        backbone=dict(type='LocalMIMViT', arch=ENCODER, img_size=IMG_SIZE, patch_size=PATCH,
                      mask_ratio=0.75, out_indices=TAPS),
        neck=dict(type='MultiLayerNeck', in_channels=ENCODER['embed_dims'], num_layers=4),
        head=dict(type='LocalMIMHead', in_channels=ENCODER['embed_dims'],
                  target_channels=channels, scales=[4, 2, 1, 0.5], embed_dims=128, num_heads=4,
                  depth=1),
        target_generator=generator)


def mae() -> dict:
    """mmpretrain's MAE (stock modules and init); the decoder scaled down with the encoder:
    4 blocks of width 128 (ViT-B: 8 blocks of 512 behind a 12 x 768 encoder)."""
    return dict(
        type='MAE', data_preprocessor=PREPROCESSOR,
        backbone=dict(type='MAEViT', arch=ENCODER, img_size=IMG_SIZE, patch_size=PATCH,
                      mask_ratio=0.75),
        neck=dict(type='MAEPretrainDecoder', num_patches=(IMG_SIZE // PATCH) ** 2,
                  patch_size=PATCH, in_chans=3, embed_dim=ENCODER['embed_dims'],
                  decoder_embed_dim=128, decoder_depth=4, decoder_num_heads=4, mlp_ratio=4.),
        head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=PATCH,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        init_cfg=[dict(type='Xavier', layer='Linear', distribution='uniform'),
                  dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)])


def lomar() -> Optional[dict]:
    """The project's LoMaR config on the shared encoder: 4 windows of 4x4 patches (half the
    8x8 grid per side, as 7x7 of 14x14 at ViT-B/224), 80 % masked. None when not present."""
    path = osp.join(REPO, LOMAR_CONFIG)
    if not osp.exists(path) or MODELS.get('LoMaR') is None:
        return None
    model = Config.fromfile(path).model.to_dict()
    model['data_preprocessor'] = PREPROCESSOR
    model['backbone'].update(arch=ENCODER, img_size=IMG_SIZE, patch_size=PATCH, window_size=4)
    model['head'].update(embed_dims=ENCODER['embed_dims'], patch_size=PATCH)
    return model


def method_configs() -> Dict[str, dict]:
    methods = {'LocalMIM-HOG': localmim('hog'), 'LocalMIM-pixel': localmim('pixel'),
               'MAE': mae()}
    lomar_cfg = lomar()
    if lomar_cfg is not None:
        methods['LoMaR'] = lomar_cfg
    return methods


def build_model(cfg: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    return model


# --------------------------------------------------------------------------- data
def random_resized_crop(images: torch.Tensor, size: int, generator: torch.Generator,
                        scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True) -> torch.Tensor:
    """torchvision's RandomResizedCrop (+ horizontal flip) for a uint8 batch, one affine
    resampling per batch (bilinear); returns float images in 0..255."""
    n = len(images)
    tries = 10
    area = torch.empty(n, tries).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(n, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                               generator=generator)
    w, h = (area * log_ratio.exp()).sqrt(), (area / log_ratio.exp()).sqrt()
    valid = (w <= 1) & (h <= 1)
    first = valid.float().argmax(dim=1)
    w = torch.where(valid.any(1), w[torch.arange(n), first], torch.ones(n))
    h = torch.where(valid.any(1), h[torch.arange(n), first], torch.ones(n))
    cx = torch.rand(n, generator=generator) * (1 - w) + w / 2
    cy = torch.rand(n, generator=generator) * (1 - h) + h / 2
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1., 1.) if flip else 1.
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * sign, 2 * cx - 1
    theta[:, 1, 1], theta[:, 1, 2] = h, 2 * cy - 1
    grid = F.affine_grid(theta, (n, 3, size, size), align_corners=False)
    out = F.grid_sample(images.float(), grid, mode='bilinear', padding_mode='border',
                        align_corners=False)
    return out.clamp_(0, 255)


class Batches:
    """An endless, seeded stream of augmented batches (the same stream for every method)."""

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int):
        self.images, self.batch_size = images, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order, self.pos = torch.randperm(len(images), generator=self.generator), 0

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > len(self.order):
            self.order, self.pos = torch.randperm(len(self.images), generator=self.generator), 0
        idx = self.order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return random_resized_crop(self.images[idx], IMG_SIZE, self.generator)


# --------------------------------------------------------------------------- training
def param_groups(model: torch.nn.Module, weight_decay: float) -> List[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(('token', 'pos_embed')) else decay).append(p)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.)]


def lr_at(fraction: float, peak: float, warmup: float = 0.05, min_lr: float = 1e-6) -> float:
    if fraction < warmup:
        return peak * max(fraction / warmup, 1e-3)
    progress = min((fraction - warmup) / (1 - warmup), 1.)
    return min_lr + (peak - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


class Trainee:
    """One method: model, optimiser, its own clock and the batches it has consumed."""

    def __init__(self, name: str, cfg: dict, images: torch.Tensor, args):
        self.name, self.cfg = name, cfg
        self.model = build_model(cfg, args.seed).train()
        lr = args.blr * args.batch_size / 256
        self.peak_lr = lr
        self.wrapper = OptimWrapper(torch.optim.AdamW(param_groups(self.model, 0.05), lr=lr,
                                                      betas=(0.9, 0.95)))
        self.batches = Batches(images, args.batch_size, args.seed)
        self.clock, self.cpu_clock, self.steps, self.losses = 0., 0., 0, []
        self.checkpoints: List[dict] = []

    def step(self, total_budget: float) -> None:
        inputs = self.batches.next()
        lr = lr_at(self.clock / total_budget, self.peak_lr)
        for group in self.wrapper.optimizer.param_groups:
            group['lr'] = lr
        data = dict(inputs=inputs, data_samples=[DataSample() for _ in range(len(inputs))])
        start, cpu_start = time.perf_counter(), time.thread_time()
        log_vars = self.model.train_step(data, self.wrapper)
        self.clock += time.perf_counter() - start
        self.cpu_clock += time.thread_time() - cpu_start
        self.steps += 1
        loss = log_vars['loss']
        self.losses.append(loss.item() if isinstance(loss, torch.Tensor) else float(loss))

    def save(self, path: str, budget_s: float, batch_size: int) -> dict:
        meta = dict(method=self.name, model=self.cfg, budget_s=budget_s, train_s=self.clock,
                    main_thread_cpu_s=self.cpu_clock,
                    steps=self.steps, images_seen=self.steps * batch_size,
                    loss_last100=sum(self.losses[-100:]) / max(len(self.losses[-100:]), 1))
        tmp = path + '.tmp'
        torch.save(dict(state_dict=self.model.state_dict(), meta=meta), tmp)
        os.replace(tmp, path)
        return dict(meta, checkpoint=path)


def pretrain(args, images: torch.Tensor) -> List[str]:
    """Pre-train every method, interleaved; the checkpoint paths (random init first)."""
    budgets = [m * args.budget_minutes * 60 for m in args.budget_multiples]
    total = budgets[-1]
    trainees = {name: Trainee(name, cfg, images, args) for name, cfg in method_configs().items()}
    ckpt_dir = osp.join(args.out_dir, 'checkpoints')
    os.makedirs(ckpt_dir, exist_ok=True)
    paths = []
    if args.eval_init:  # the first method's encoder before any step (same encoder for all)
        first = next(iter(trainees.values()))
        paths.append(first.save(osp.join(ckpt_dir, 'init.pth'), 0., args.batch_size)['checkpoint'])
    print(f'pre-training {list(trainees)} for budgets {[b / 60 for b in budgets]} min each, '
          f'interleaved', flush=True)
    last_report = time.time()
    active = list(trainees.values())
    while active:
        for trainee in list(active):
            trainee.step(total)
            # a slow step may cross several budgets: save one checkpoint for each
            while (len(trainee.checkpoints) < len(budgets)
                   and trainee.clock >= budgets[len(trainee.checkpoints)]):
                done = len(trainee.checkpoints)
                mult = args.budget_multiples[done]
                path = osp.join(ckpt_dir, f'{slug(trainee.name)}_{mult}x.pth')
                trainee.checkpoints.append(trainee.save(path, budgets[done], args.batch_size))
                print(f'{trainee.name}: checkpoint {mult}x after {trainee.steps} steps, '
                      f'{trainee.clock:.0f} s, loss {trainee.checkpoints[-1]["loss_last100"]:.4f}',
                      flush=True)
                if done + 1 == len(budgets):
                    active.remove(trainee)
        if time.time() - last_report > 60:
            last_report = time.time()
            print('  ' + ', '.join(f'{t.name}: {t.steps} steps {t.clock:.0f} s'
                                   for t in trainees.values()), flush=True)
    return paths + [c['checkpoint'] for t in trainees.values() for c in t.checkpoints]


def slug(name: str) -> str:
    return name.lower().replace(' ', '_')


# --------------------------------------------------------------------------- evaluation
def load_checkpoint(path: str, config: Optional[str] = None):
    """(model, meta) of a checkpoint of this script (or of any model config given)."""
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    state = ckpt.get('state_dict', ckpt)
    meta = ckpt.get('meta', {}) if isinstance(ckpt.get('meta'), dict) else {}
    if config is not None:
        cfg = Config.fromfile(config).model.to_dict()
    elif 'model' in meta:
        cfg = meta['model']
    else:
        raise ValueError(f'{path} carries no model config (meta.model); pass --config with the '
                         'config the checkpoint was trained with')
    model = build_model(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    backbone_missing = [k for k in missing if k.startswith('backbone.')]
    if backbone_missing or not any(k.startswith('backbone.') for k in state):
        raise ValueError(f'{path}: the backbone weights do not match the config '
                         f'(missing {backbone_missing[:5]}...)')
    return model, dict(meta, checkpoint=path)


def evaluate_checkpoint(path: str, data: dict, args, config: Optional[str] = None) -> dict:
    model, meta = load_checkpoint(path, config)
    img_size = model.backbone.patch_resolution[0] * model.backbone.patch_embed.projection.stride[0]
    if img_size != data['size']:
        raise ValueError(f'{path}: the encoder expects {img_size} px, the evaluation data is '
                         f"{data['size']} px; pass --img-size {img_size}")
    start = time.perf_counter()
    train_f = extract_features(model.backbone, data['train_x'], MEAN, STD, args.eval_batch_size)
    test_f = extract_features(model.backbone, data['test_x'], MEAN, STD, args.eval_batch_size)
    knn = knn_accuracy(train_f, data['train_y'], test_f, data['test_y'], k=args.knn_k,
                       temperature=args.knn_temperature)
    linear = linear_probe_accuracy(train_f, data['train_y'], test_f, data['test_y'],
                                   epochs=args.probe_epochs)
    meta.pop('model', None)
    result = dict(meta, knn_top1=knn, linear_top1=linear, eval_s=time.perf_counter() - start)
    print(f"evaluated {osp.basename(path)}: k-NN {100 * knn:.2f} %, linear {100 * linear:.2f} %",
          flush=True)
    return result


def load_eval_data(args) -> dict:
    train_x, train_y, classes = load_image_folder(args.data_root, args.train_split, args.img_size,
                                                  args.eval_train_per_class, args.cache_dir)
    test_x, test_y, test_classes = load_image_folder(args.data_root, args.test_split,
                                                     args.img_size, args.eval_test_per_class,
                                                     args.cache_dir)
    if classes != test_classes:
        raise ValueError(f'the {args.train_split} and {args.test_split} splits of '
                         f'{args.data_root} have different class folders')
    return dict(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                classes=classes, size=args.img_size)


# --------------------------------------------------------------------------- report
def summarise(results: List[dict], args) -> dict:
    """Target check: LocalMIM at the base budget vs MAE at the largest one."""
    def acc(method, mult, key='knn_top1'):
        budget = mult * args.budget_minutes * 60
        for r in results:
            if r.get('method') == method and abs(r.get('budget_s', -1) - budget) < 1e-6:
                return r[key]
        return None

    base, top = args.budget_multiples[0], args.budget_multiples[-1]
    checks = {}
    for method in ('LocalMIM-HOG', 'LocalMIM-pixel'):
        ours, theirs = acc(method, base), acc('MAE', top)
        if ours is not None and theirs is not None:
            checks[f'{method}@{base}x_vs_MAE@{top}x_knn'] = dict(
                localmim=ours, mae=theirs, margin=ours - theirs, met=ours >= theirs)
    return checks


def to_markdown(report: dict) -> str:
    cfg = report['settings']
    mults = cfg['budget_multiples']
    head = ' | '.join(f'{m}x k-NN | {m}x linear' for m in mults)
    lines = ['# Learning efficiency (accuracy vs pre-training wall-clock)', '',
             f"Base budget {cfg['budget_minutes']} min per method; device {report['device']}; "
             f"pre-training images: {report['num_train_images']}; k-NN bank "
             f"{report['num_eval_train']} / test {report['num_eval_test']} images "
             f"({cfg['test_split']} split).", '',
             f'| method | {head} | steps at {mults[-1]}x | images seen at {mults[-1]}x |',
             '|---|' + '---|' * (2 * len(mults) + 2)]
    methods = []
    for r in report['results']:
        if r.get('method') and r['method'] not in methods and r.get('budget_s', 0) > 0:
            methods.append(r['method'])
    for method in methods:
        rows = sorted((r for r in report['results']
                       if r.get('method') == method and r.get('budget_s', 0) > 0),
                      key=lambda r: r['budget_s'])
        cells = ' | '.join(f"{100 * r['knn_top1']:.2f} | {100 * r['linear_top1']:.2f}"
                           for r in rows)
        lines.append(f"| {method} | {cells} | {rows[-1]['steps']} | {rows[-1]['images_seen']} |")
    init = [r for r in report['results'] if r.get('budget_s') == 0]
    if init:
        knn, linear = 100 * init[0]['knn_top1'], 100 * init[0]['linear_top1']
        lines += ['', f'Random initialisation (no pre-training): k-NN {knn:.2f} %, '
                      f'linear {linear:.2f} %.']
    if report['target_checks']:
        lines += ['', '| target | LocalMIM k-NN | MAE k-NN | margin | met |',
                  '|---|---|---|---|---|']
        for name, c in report['target_checks'].items():
            lines.append(f"| {name} | {100 * c['localmim']:.2f} | {100 * c['mae']:.2f} | "
                         f"{100 * c['margin']:+.2f} | {'yes' if c['met'] else 'no'} |")
    return '\n'.join(lines) + '\n'


def plot(report: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=90)
    init = [r for r in report['results'] if r.get('budget_s') == 0]
    for ax, key, title in zip(axes, ('knn_top1', 'linear_top1'), ('k-NN (k=20)', 'linear probe')):
        methods = sorted({r['method'] for r in report['results'] if r.get('budget_s', 0) > 0})
        for method in methods:
            rows = sorted((r for r in report['results']
                           if r.get('method') == method and r.get('budget_s', 0) > 0),
                          key=lambda r: r['budget_s'])
            ax.plot([r['train_s'] / 60 for r in rows], [100 * r[key] for r in rows], marker='o',
                    label=method)
        if init:
            ax.axhline(100 * init[0][key], color='grey', ls=':', label='random init')
        ax.set_xlabel('pre-training wall-clock (min)')
        ax.set_ylabel('top-1 (%)')
        ax.set_title(title)
        ax.grid(alpha=.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict, out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'learning_efficiency.json'), 'w') as f:
        json.dump(report, f, indent=2)
    with open(osp.join(out_dir, 'learning_efficiency.md'), 'w') as f:
        f.write(to_markdown(report))
    plot(report, osp.join(out_dir, 'learning_efficiency.png'))
    print(to_markdown(report))
    print(f'wrote {out_dir}/learning_efficiency.{{json,md,png}}')


# --------------------------------------------------------------------------- CLI
def add_data_args(parser) -> None:
    parser.add_argument('--data-root', help='image-folder dataset: ROOT/<split>/<class>/<img>')
    parser.add_argument('--archive', help='a .tar.gz of such a folder, unpacked into --cache-dir '
                        '(then --data-root defaults to the unpacked folder)')
    parser.add_argument('--cache-dir', default=None,
                        help='where to unpack --archive and cache decoded images')
    parser.add_argument('--train-split', default='train')
    parser.add_argument('--test-split', default='test')
    parser.add_argument('--img-size', type=int, default=IMG_SIZE)
    parser.add_argument('--eval-train-per-class', type=int, default=None,
                        help='images per class in the k-NN bank / probe training set (default all)')
    parser.add_argument('--eval-test-per-class', type=int, default=None,
                        help='test images per class (default all)')
    parser.add_argument('--eval-batch-size', type=int, default=256)
    parser.add_argument('--knn-k', type=int, default=20)
    parser.add_argument('--knn-temperature', type=float, default=0.07)
    parser.add_argument('--probe-epochs', type=int, default=100)
    parser.add_argument('--out-dir', default='work_dirs/benchmarks/learning_efficiency')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    run = sub.add_parser('run', help='pre-train every method, evaluate, report')
    add_data_args(run)
    run.add_argument('--budget-minutes', type=float, default=4.,
                     help='base pre-training budget per method (wall-clock of its own steps)')
    run.add_argument('--budget-multiples', type=int, nargs='+', default=[1, 2, 3])
    run.add_argument('--batch-size', type=int, default=128)
    run.add_argument('--blr', type=float, default=1.5e-3, help='lr = blr * batch / 256')
    run.add_argument('--train-per-class', type=int, default=None,
                     help='pre-training images per class (default all)')
    run.add_argument('--no-eval-init', dest='eval_init', action='store_false',
                     help='skip the random-initialisation reference')
    run.add_argument('--seed', type=int, default=0)
    run.add_argument('--quick', action='store_true',
                     help='smoke run: 30 images per class, 3 s base budget, batch 32, '
                     '50-epoch probe')
    evaluate = sub.add_parser('evaluate', help='k-NN and linear probe of checkpoints')
    add_data_args(evaluate)
    evaluate.add_argument('checkpoints', nargs='+')
    evaluate.add_argument('--config', help='model config when the checkpoint has no meta.model')
    args = parser.parse_args(argv)
    if args.command == 'run':
        if args.quick:
            args.budget_minutes = 0.05
            args.batch_size = min(args.batch_size, 32)
            args.train_per_class = args.train_per_class or 30
            args.eval_train_per_class = args.eval_train_per_class or 30
            args.eval_test_per_class = args.eval_test_per_class or 20
            args.probe_epochs = 50
        if args.budget_minutes <= 0 or sorted(args.budget_multiples) != args.budget_multiples \
                or args.budget_multiples[0] <= 0:
            parser.error(f'--budget-minutes={args.budget_minutes} must be > 0 and '
                         f'--budget-multiples={args.budget_multiples} positive and increasing')
    if args.archive:
        args.data_root = unpack(args.archive, args.cache_dir, args.data_root)
    if not args.data_root:
        parser.error('give --data-root (or --archive with --cache-dir)')
    return args


def unpack(archive: str, cache_dir: Optional[str], data_root: Optional[str]) -> str:
    if not cache_dir:
        raise SystemExit('--archive needs --cache-dir (where to unpack it)')
    target = osp.join(cache_dir, osp.basename(archive).split('.')[0])
    if not osp.isdir(target):
        os.makedirs(target + '.tmp', exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target + '.tmp', filter='data')
        os.replace(target + '.tmp', target)
    return data_root or target


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    init_default_scope('mmpretrain')
    MMLogger.get_current_instance().setLevel('WARNING')  # init_weights logs every parameter
    data = load_eval_data(args)
    device = f'CPU ({torch.get_num_threads()} threads)'
    if args.command == 'evaluate':
        results = [evaluate_checkpoint(p, data, args, args.config) for p in args.checkpoints]
        report = dict(command='evaluate', device=device, data_root=args.data_root,
                      results=results)
        os.makedirs(args.out_dir, exist_ok=True)
        with open(osp.join(args.out_dir, 'evaluation.json'), 'w') as f:
            json.dump(report, f, indent=2)
        for r in results:
            print(f"{r['checkpoint']}: k-NN {100 * r['knn_top1']:.2f} %, "
                  f"linear {100 * r['linear_top1']:.2f} %")
        return report

    images, _, _ = load_image_folder(args.data_root, args.train_split, args.img_size,
                                     args.train_per_class, args.cache_dir)
    start = time.time()
    paths = pretrain(args, images)
    pretrain_s = time.time() - start
    results = [evaluate_checkpoint(p, data, args) for p in paths]
    settings = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, list,
                                                                       type(None)))}
    report = dict(command='run', device=device, settings=settings,
                  methods=sorted({r['method'] for r in results if r['budget_s'] > 0}),
                  num_train_images=len(images), num_eval_train=len(data['train_x']),
                  num_eval_test=len(data['test_x']), pretrain_wall_s=pretrain_s,
                  total_wall_s=time.time() - start, results=results,
                  target_checks=summarise(results, args),
                  created=time.strftime('%Y-%m-%d %H:%M:%S'))
    write_report(report, args.out_dir)
    return report


if __name__ == '__main__':
    main()
