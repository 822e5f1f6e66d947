"""Learning efficiency: LocalMIM (HOG, pixel) vs mmpretrain's MAE, accuracy per pre-training cost.

    # the full comparison on CPU (CIFAR-10 at its native 32 px; about 45 min on 2 quiet cores)
    python -m tools.benchmarks.learning_efficiency run \
        --archive ../shared/data/cifar10_jpeg.tar.gz --cache-dir /tmp/lme
    # the GPU variant: ViT-S/16 at 224 px on any image folder (about 10 min on one GPU)
    python -m tools.benchmarks.learning_efficiency run --device cuda --data-root DIR --tag gpu
    # ViT-B/16's target geometry: 128-px Caltech-101 photos, patch 16, cells 4 / 8 / 16 / 32 px
    # (CPU; with --device cuda: ViT-S/16 at the same geometry, more epochs)
    python -m tools.benchmarks.learning_efficiency run --protocol caltech128 \
        --archive ../shared/data/caltech101_dev_128.tar.gz --cache-dir /tmp/lme_caltech
    # smoke run (writes to work_dirs/benchmarks)
    python -m tools.benchmarks.learning_efficiency run --quick --data-root data/sample_cifar \
        --test-split val
    # k-NN and linear probe of checkpoints of this script on any image folder
    python -m tools.benchmarks.learning_efficiency evaluate --data-root DIR CKPT [CKPT ...]
    # one budget of the committed CIFAR run again (4 epochs, two methods, both seeds; about
    # 8 min on 2 cores; the warm-up of the full run), then its figures next to the committed ones
    python -m tools.benchmarks.learning_efficiency run \
        --archive ../shared/data/cifar10_jpeg.tar.gz --cache-dir /tmp/lme --budgets 4 \
        --warmup-epochs 0.8 --methods LocalMIM-HOG MAE --ablation-seeds --no-eval-init \
        --out-dir work_dirs/benchmarks --tag rerun_4ep
    python -m tools.benchmarks.learning_efficiency compare \
        work_dirs/benchmarks/learning_efficiency_rerun_4ep.json  # against docs/results/'s

Protocol (``docs/benchmarks.md`` explains each choice; ``--protocol`` picks the geometry: ``cifar``
(default) 32 px with patch 4, so LocalMIM's target cells are 1 / 2 / 4 / 8 px; ``caltech128``
128 px with patch 16, ViT-B/16's cells of 4 / 8 / 16 / 32 px; both 8 x 8 tokens):

* Methods: LocalMIM-HOG, LocalMIM-pixel and mmpretrain's MAE, each built from its shipped config
  (:func:`.core.methods.method_config`) on the same small ViT encoder and initialised by its own
  ``init_weights``; two ablations of LocalMIM-HOG (one seed): only the top block supervised, at
  its coarse scale 0.5, and all four taps at one scale (1).
* Decoders: each method's decoder width (config values; depth kept) is chosen so that its
  decoder-to-encoder forward FLOP ratio equals the ratio of the same method at ViT-B/224, FLOPs
  counted by mmengine's ``FlopAnalyzer``. ``--decoders unscaled`` keeps the configs' decoders.
* Cost, three ways: images seen (epochs of the pre-training set); the run's measured wall-clock
  (its own training steps); and ViT-B-equivalent cost = images seen x the method's per-image step
  time at ViT-B/224 measured in the same session as ``throughput`` times it
  (:func:`.core.timing.time_models`), shown in MAE-epochs (MAE's per-image time x the
  pre-training set size).
* Schedule: each budget ends annealed. The runs of one (method, seed) share a trunk: linear
  warm-up, then the peak lr; at (1 - cooldown) of each budget a branch leaves the trunk and
  decays its lr (half cosine) to the minimum at the budget, where its checkpoint is saved (a
  warmup-stable-decay schedule). The budgets are counted in optimiser steps, so the accuracies do
  not depend on the machine's speed. All runs are interleaved step by step in one process (each
  with its own RNG state), so they meet the same machine conditions.
* Optimisation: the ViT-B/16 pre-training recipe's ``optim_wrapper`` (AdamW, betas, weight decay
  and its ``paramwise_cfg``: no decay on norms, biases, 1-D parameters, tokens and position
  embeddings) built by mmengine's ``build_optim_wrapper`` at lr = ``--blr`` x batch / 256, float32
  (``OptimWrapper``) or AMP (``AmpOptimWrapper``, ``--device cuda``); the lr follows mmengine's
  ``LinearLR`` (the warm-up) and ``CosineAnnealingLR`` (each budget's decay, to the recipe's
  minimum), stepped after every optimiser step as the Runner's scheduler hook does.
* Evaluation: the encoder's unmasked forward, last block output averaged over patch tokens; k-NN
  (k=20, cosine, temperature 0.07) and a linear probe trained on the train split and scored on the
  test split; mean and spread over seeds; the first budget at which each method reaches MAE's
  final accuracy; LocalMIM at E against MAE at 3E.
"""
import argparse
import copy
import functools
import json
import math
import os
import os.path as osp
import statistics
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import CosineAnnealingLR, LinearLR, build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample

from localmim_mm.evaluation import (extract_features, knn_accuracy, linear_probe_accuracy,
                                    list_image_folder, load_image_folder)
from localmim_mm.runtime.randomness import capture_rng_states, restore_rng_states
from localmim_mm.transfer import model_state_dict, read_checkpoint, save_pure_checkpoint

from .core.data import unpack_once
from .core.methods import arch_settings, method_config
from .core.models import build_model, load_config
from .core.optim import device_optim_wrapper
from .core.provenance import Provenance
from .core.report import output_stem, write_json, write_outputs
from .core.timing import time_models

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
METHODS = ['LocalMIM-HOG', 'LocalMIM-pixel', 'MAE']
ABLATIONS = ['LocalMIM-HOG top tap', 'LocalMIM-HOG one scale']
REFERENCE = 'MAE'
LOCALMIM = ['LocalMIM-HOG', 'LocalMIM-pixel']
VIT_B = dict(arch='b', img_size=224, patch_size=16)
# Per device: the encoder, the data and the budgets (epochs of the pre-training set).
SCALES = {
    'cpu': dict(
        encoder=dict(embed_dims=128, num_layers=8, num_heads=2, feedforward_channels=512),
        img_size=32, patch_size=4, batch_size=64, budgets=[4, 8, 12, 16], train_images=5000,
        test_images=5000, probe_epochs=100, probe_batch_size=256,
        step_cost=dict(batch=4, steps=3, warmup=1)),
    # ViT-S/16 as in DeiT / MAE (mmpretrain's 's' arch is the older 768-wide one).
    'cuda': dict(
        encoder=dict(embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1536),
        img_size=224, patch_size=16, batch_size=256, budgets=[2, 4, 6, 8], train_images=20000,
        test_images=5000, probe_epochs=100, probe_batch_size=1024,
        step_cost=dict(batch=64, steps=10, warmup=3)),
}
QUICK = dict(train_images=100, test_images=100, batch_size=20, budgets=[1, 2, 3, 4],
             probe_epochs=20, step_cost=dict(batch=1, steps=1, warmup=1))
# ViT-B/16's target geometry (``--protocol caltech128``): 128-px photos (Caltech-101 subset,
# ``../shared/data/caltech101_dev_128.tar.gz``) with 16-px patches give the 8 x 8 tokens of the
# CIFAR protocol and the recipe's cells of 4 / 8 / 16 / 32 px (patch / scales 4, 2, 1, 0.5).
# Encoder, batch, optimiser and evaluation are those of the device's CIFAR protocol; every
# train / test image is used; MAE's largest CPU budget sees about as many images as CIFAR's.
CALTECH128 = {
    'cpu': dict(SCALES['cpu'], img_size=128, patch_size=16, budgets=[6, 8, 12, 18, 24],
                train_images=0, test_images=0),
    'cuda': dict(SCALES['cuda'], img_size=128, patch_size=16, budgets=[20, 40, 60, 80],
                 train_images=0, test_images=0),
}
# Per protocol: the device settings and the base name of the report files.
PROTOCOLS = {'cifar': dict(scales=SCALES, report='learning_efficiency'),
             'caltech128': dict(scales=CALTECH128, report='learning_efficiency_caltech')}


# --------------------------------------------------------------------------- FLOPs
class _LossForward(torch.nn.Module):
    """One pre-training forward (``model.loss``) of a batch, as a traceable module."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        losses = self.model.loss(inputs, [DataSample() for _ in range(len(inputs))])
        return sum(losses.values())


def _sdpa_flops(inputs, outputs) -> int:
    """``scaled_dot_product_attention``: q @ k^T and weights @ v, one multiply-add each."""
    query, key = get_shape(inputs[0]), get_shape(inputs[1])
    return math.prod(query[:-1]) * key[-2] * query[-1] * 2


def forward_flops(model: torch.nn.Module, img_size: int) -> Dict[str, int]:
    """Multiply-adds of one image's pre-training forward (mmengine ``FlopAnalyzer`` with a handle
    for ``scaled_dot_product_attention``), by module: ``encoder`` = the backbone (masked forward),
    ``decoder`` = neck + head (LocalMIM's decoders; MAE's decoder is its neck), ``target`` = the
    target generator, ``other`` = what runs outside these modules (e.g. the einsum of MAE's
    patchify, which the counter takes for a contraction)."""
    inputs = torch.rand(1, 3, img_size, img_size) * 255
    analyzer = FlopAnalyzer(_LossForward(model).cpu(), (inputs, ))
    analyzer.set_op_handle('aten::scaled_dot_product_attention', _sdpa_flops)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with torch.no_grad():
        total = int(analyzer.total())
        by_module = analyzer.by_module()
    parts = {key: int(by_module.get(f'model.{key}', 0))
             for key in ('backbone', 'neck', 'head', 'target_generator')}
    encoder, decoder = parts['backbone'], parts['neck'] + parts['head']
    target = parts['target_generator']
    return dict(encoder=encoder, decoder=decoder, target=target,
                other=total - encoder - decoder - target, ratio=decoder / encoder)


def decoder_heads(width: int) -> int:
    """Attention heads of a decoder ``width`` wide: the divisor of the width closest to
    width / 32 (the ViT-B decoders of LocalMIM and MAE both have 32 channels per head)."""
    divisors = [h for h in range(1, width + 1) if width % h == 0]
    return min(divisors, key=lambda h: (abs(h - width / 32), h))


def flop_matched_decoder(name: str, scale: dict, target_ratio: float) -> dict:
    """The decoder width (multiple of 4) whose decoder / encoder FLOP ratio on ``scale``'s
    encoder is closest to ``target_ratio``.

    Decoder FLOPs are a quadratic in the width (linear layers ~ w^2; attention, norms and the
    input / output projections ~ w), so three counts give the curve; the chosen width is counted
    again, and a mismatch with the curve is an error.
    """
    def count(width):
        decoder = dict(embed_dims=width, num_heads=decoder_heads(width))
        return forward_flops(build_model(model_config(name, scale, decoder)), scale['img_size'])

    samples = [8, 64, 128]
    counts = [count(w) for w in samples]
    encoder = counts[0]['encoder']
    a, b, c = torch.linalg.solve(
        torch.tensor([[w * w, w, 1.] for w in samples], dtype=torch.float64),
        torch.tensor([n['decoder'] for n in counts], dtype=torch.float64)).tolist()
    widths = range(4, 4097, 4)
    best = min(widths, key=lambda w: abs((a * w * w + b * w + c) / encoder - target_ratio))
    flops = count(best)
    predicted = a * best * best + b * best + c
    if abs(flops['decoder'] - predicted) > 1e-3 * predicted:
        raise RuntimeError(f'{name}: decoder FLOPs at width {best} are {flops["decoder"]}, the '
                           f'quadratic through widths {samples} predicts {predicted:.0f}; the '
                           'decoder is not quadratic in its width, the width search is invalid')
    return dict(embed_dims=best, num_heads=decoder_heads(best), flops=flops)


# --------------------------------------------------------------------------- methods
def model_config(name: str, scale: dict, decoder: Optional[dict]) -> dict:
    """A method's config on the benchmark encoder; ``decoder`` sets its decoder width."""
    cfg = method_config(
        name, arch=scale['encoder'], img_size=scale['img_size'],
        patch_size=scale['patch_size'],
        decoder=None if decoder is None else dict(embed_dims=decoder['embed_dims'],
                                                  num_heads=decoder['num_heads']))
    # the images are decoded as RGB already
    cfg['data_preprocessor'] = dict(cfg['data_preprocessor'], to_rgb=False)
    return cfg


def plan_methods(names: List[str], scale: dict, decoders: str,
                 vitb_models: Dict[str, torch.nn.Module]) -> Dict[str, dict]:
    """Per method: its ViT-B/224 FLOPs, the benchmark decoder and config, and their FLOPs."""
    plan = {}
    for name in names:
        vitb = forward_flops(vitb_models[name], 224)
        decoder = (flop_matched_decoder(name, scale, vitb['ratio'])
                   if decoders == 'flop-matched' else None)
        cfg = model_config(name, scale, decoder)
        flops = decoder['flops'] if decoder else forward_flops(build_model(cfg),
                                                               scale['img_size'])
        plan[name] = dict(vitb_flops=vitb, config=cfg, flops=flops,
                          decoder=describe_decoder(cfg), geometry=tap_geometry(cfg),
                          vitb_geometry=tap_geometry(method_config(name, **VIT_B)))
        print(f'{name}: {describe_taps(plan[name]["geometry"])}; decoder '
              f'{plan[name]["decoder"]}; decoder / encoder FLOPs {flops["ratio"]:.3f} '
              f'(ViT-B/224: {vitb["ratio"]:.3f})', flush=True)
    return plan


def tap_geometry(cfg: dict) -> List[dict]:
    """The supervised blocks of a method's config and the cell (px) of each one's target:
    LocalMIM's taps (``out_indices``) with cells of patch / scale; MAE's last block (through its
    decoder) with the patch as the cell of its pixel target."""
    backbone = cfg['backbone']
    if cfg['type'] == 'MAE':
        depth = arch_settings(backbone['arch'])['num_layers']
        return [dict(block=depth - 1, cell_px=backbone['patch_size'])]
    return [dict(block=block, cell_px=cell) for block, cell in
            zip(backbone['out_indices'], cfg['target_generator']['cell_sizes'])]


def describe_taps(geometry: List[dict]) -> str:
    """'blocks 1 / 3 / 5 / 7: cells 4 / 8 / 16 / 32 px'."""
    plural = 's' if len(geometry) > 1 else ''
    blocks = ' / '.join(str(g['block']) for g in geometry)
    cells = ' / '.join(str(g['cell_px']) for g in geometry)
    return f'block{plural} {blocks}: cell{plural} {cells} px'


def describe_decoder(cfg: dict) -> dict:
    if cfg['type'] == 'MAE':
        neck = cfg['neck']
        return dict(embed_dims=neck['decoder_embed_dim'], num_heads=neck['decoder_num_heads'],
                    depth=neck['decoder_depth'], count=1)
    head = cfg['head']
    return dict(embed_dims=head['embed_dims'], num_heads=head['num_heads'],
                depth=head.get('depth', 1), count=len(head['scales']))


def build_vitb_models(names: List[str]) -> Dict[str, torch.nn.Module]:
    """Each method at ViT-B/224, built from its config by :func:`.core.methods.method_config`."""
    return {name: build_model(method_config(name, **VIT_B))
            for name in names}


def measure_step_costs(vitb_models: Dict[str, torch.nn.Module], args,
                       device: torch.device) -> dict:
    """Per-image training-step time of each method at ViT-B/224 (throughput's timing)."""
    cost = args.step_cost
    amp = args.amp
    print(f'timing ViT-B/224 steps of {list(vitb_models)} (batch {cost["batch"]})', flush=True)
    rows = time_models(vitb_models, 224, cost['batch'], cost['steps'], cost['warmup'], device,
                       amp)
    threads = f' --threads {args.threads}' if args.threads else ''
    return dict(
        rows=rows, image_s={name: row['image_s'] for name, row in rows.items()},
        method='core.timing.time_models: the methods at ViT-B/224 interleaved round-robin, '
               f'median step time / batch ({"AMP fp16" if amp else "fp32"}, {device.type})',
        equivalent_command=(f'python -m tools.benchmarks.throughput --groups variants '
                            f'--batch {cost["batch"]} --steps {cost["steps"]} --warmup '
                            f'{cost["warmup"]}{threads}'
                            + {'cpu': ' --cpu', 'cuda': '' if amp else ' --no-amp'}[device.type]))


# --------------------------------------------------------------------------- data
def random_resized_crop(images: torch.Tensor, size: int, generator: torch.Generator,
                        scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True) -> torch.Tensor:
    """torchvision's RandomResizedCrop (+ horizontal flip) for a uint8 batch, one affine
    resampling per batch (bilinear); returns float images in 0..255 on the images' device. The
    random draws come from ``generator`` (CPU), so they do not depend on the device."""
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
    grid = F.affine_grid(theta.to(images.device), (n, 3, size, size), align_corners=False)
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
        return random_resized_crop(self.images[idx.to(self.images.device)],
                                   self.images.shape[-1], self.generator)

    def clone(self) -> 'Batches':
        twin = copy.copy(self)
        twin.generator = torch.Generator()
        twin.generator.set_state(self.generator.get_state())
        return twin


# --------------------------------------------------------------------------- training
RECIPE = 'localmim_vit_recipe'  # the ViT-B/16 pre-training recipe (core.models.LOCAL_CONFIGS)


@functools.lru_cache(maxsize=None)
def recipe() -> Config:
    return load_config(RECIPE)


def optim_wrapper_cfg(peak_lr: float, amp: bool) -> dict:
    """The recipe's ``optim_wrapper`` at ``peak_lr``: AMP (its own ``AmpOptimWrapper``) or
    float32 ``OptimWrapper``; optimiser and ``paramwise_cfg`` are the recipe's."""
    wrapper, _ = device_optim_wrapper(recipe().optim_wrapper.to_dict(), amp)
    wrapper['optimizer'] = dict(wrapper['optimizer'], lr=peak_lr)
    return wrapper


def warmup_scheduler(wrapper, steps: int) -> LinearLR:
    """Linear warm-up over the first ``steps`` optimiser steps: step s (from 0) runs at
    peak x (s + 1) / steps, the last one at the peak."""
    return LinearLR(wrapper, start_factor=1 / steps, by_epoch=False, begin=0, end=steps)


def decay_scheduler(wrapper, steps: int) -> CosineAnnealingLR:
    """From the step it is built at, a half cosine over ``steps`` optimiser steps from the lr of
    that step to the recipe's minimum lr (its ``CosineAnnealingLR``'s ``eta_min``)."""
    return CosineAnnealingLR(wrapper, eta_min=recipe().param_scheduler[-1]['eta_min'],
                             by_epoch=False, begin=0, end=steps)


class Run:
    """One pre-training run of a method and seed: a trunk at the peak lr, or a branch decaying
    to its budget. Keeps its own clock (its training steps only) and RNG state. Its lr is set
    by its schedulers, stepped after each optimiser step."""

    def __init__(self, method: str, seed: int, cfg: dict, images: torch.Tensor, args,
                 device: torch.device):
        self.method, self.seed, self.cfg, self.device = method, seed, cfg, device
        self.model = build_model(cfg, seed).to(device).train()
        self.wrapper_cfg = optim_wrapper_cfg(args.blr * args.batch_size / 256, args.amp)
        self.wrapper = build_optim_wrapper(self.model, self.wrapper_cfg)
        self.schedulers = [warmup_scheduler(self.wrapper, args.warmup_steps)]
        self.batches = Batches(images, args.batch_size, seed)
        torch.manual_seed(seed + 1)  # the masks: the same stream for every method of a seed
        self.rng = capture_rng_states()
        self.clock, self.steps, self.losses = 0., 0, []
        self.budget: Optional[dict] = None  # set when it decays: dict(epochs, steps, decay)
        self.pending: List[dict] = []  # the budgets still to branch off (a trunk's)

    def step(self) -> None:
        loss = self._train_step()
        for scheduler in self.schedulers:
            scheduler.step()
        self.steps += 1
        if not math.isfinite(loss):
            raise FloatingPointError(f'{self.method} seed {self.seed}: loss {loss} at step '
                                     f'{self.steps}; lower --blr')
        self.losses.append(loss)

    def _train_step(self) -> float:
        """One optimiser step on the next batch, in this run's RNG state; its loss. Only the
        step itself counts on the run's clock."""
        inputs = self.batches.next()
        data = dict(inputs=inputs, data_samples=[DataSample() for _ in range(len(inputs))])
        restore_rng_states(self.rng)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        log_vars = self.model.train_step(data, self.wrapper)
        loss = log_vars['loss']  # reading it synchronises: the clock holds the whole step
        loss = loss.detach().item() if isinstance(loss, torch.Tensor) else float(loss)
        self.clock += time.perf_counter() - start
        self.rng = capture_rng_states()
        return loss

    def decay_to(self, budget: dict) -> None:
        """Decay the lr to the minimum at ``budget``'s last step (called at its decay start)."""
        start, end = budget['decay']
        self.budget = budget
        self.schedulers.append(decay_scheduler(self.wrapper, end - start))

    def branch(self, budget: dict) -> 'Run':
        """A copy of this run (model, optimiser, data stream, RNG, clock) that decays to
        ``budget``; this run goes on."""
        twin = copy.copy(self)
        twin.model = copy.deepcopy(self.model)
        twin.wrapper = build_optim_wrapper(twin.model, self.wrapper_cfg)
        twin.wrapper.load_state_dict(copy.deepcopy(self.wrapper.state_dict()))
        twin.schedulers = []  # the warm-up is over at every branch point (schedule() checks it)
        twin.batches = self.batches.clone()
        twin.rng = copy.deepcopy(self.rng)
        twin.losses = list(self.losses)
        twin.pending = []
        twin.decay_to(budget)
        return twin

    def save(self, path: str, n_train: int, batch_size: int) -> dict:
        """The model's tensors and this run's metadata, through the project's checkpoint
        writer (atomic; loadable with ``weights_only=True``)."""
        epochs = self.budget['epochs'] if self.budget else 0
        meta = dict(method=self.method, seed=self.seed, model=self.cfg, budget_epochs=epochs,
                    steps=self.steps, images_seen=self.steps * batch_size,
                    epochs_seen=self.steps * batch_size / n_train, train_s=self.clock,
                    loss_last20=(statistics.fmean(self.losses[-20:]) if self.losses
                                 else None))
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        save_pure_checkpoint(state, meta, path)
        return dict(meta, checkpoint=path)


def schedule(args, n_train: int) -> List[dict]:
    """Each budget in optimiser steps, with the steps over which its branch decays."""
    budgets = []
    for epochs in args.budgets:
        steps = max(1, round(epochs * n_train / args.batch_size))
        start = round((1 - args.cooldown) * steps)
        if start < args.warmup_steps:
            raise SystemExit(f'the warm-up ({args.warmup_steps} steps) ends after the budget of '
                             f'{epochs:g} epochs starts decaying (step {start}); shorten '
                             '--warmup-epochs or raise --budgets')
        if start >= steps:
            raise SystemExit(f'the budget of {epochs:g} epochs ({steps} steps) leaves no step to '
                             'decay over; raise --budgets or --cooldown')
        budgets.append(dict(epochs=epochs, steps=steps, decay=(start, steps)))
    return budgets


def pretrain(plan: Dict[str, dict], runs: List[tuple], images: torch.Tensor, args,
             device: torch.device) -> List[dict]:
    """Train every (method, seed) of ``runs`` through every budget, interleaved: always the run
    with the fewest steps goes next. Returns the checkpoints' metadata (random init first)."""
    n_train = len(images)
    budgets = schedule(args, n_train)
    ckpt_dir = osp.join(args.work_dir, 'checkpoints')
    os.makedirs(ckpt_dir, exist_ok=True)
    saved, active = [], []
    for method, seed in runs:
        run = Run(method, seed, plan[method]['config'], images, args, device)
        if seed == args.seeds[0] and method in METHODS and args.eval_init:
            saved.append(run.save(osp.join(ckpt_dir, f'{slug(method)}_init.pth'), n_train,
                                  args.batch_size))
        run.pending = list(budgets)
        active.append(run)
    total = len(runs) * (budgets[-1]['steps'] + sum(b['steps'] - b['decay'][0]
                                                    for b in budgets[:-1]))
    print(f'pre-training {len(runs)} runs, budgets {[b["epochs"] for b in budgets]} epochs = '
          f'{[b["steps"] for b in budgets]} steps of {args.batch_size} images '
          f'({total} steps in all)', flush=True)
    done, start, last_report = 0, time.time(), time.time()
    while active:
        run = min(active, key=lambda r: r.steps)
        while run.pending and run.steps >= run.pending[0]['decay'][0]:  # a branch point
            budget = run.pending.pop(0)
            if run.pending:
                active.append(run.branch(budget))
            else:
                run.decay_to(budget)  # the trunk itself decays to the last budget
        run.step()
        done += 1
        if run.budget and run.steps >= run.budget['steps']:
            name = f"{slug(run.method)}_seed{run.seed}_{run.budget['epochs']:g}ep.pth"
            saved.append(run.save(osp.join(ckpt_dir, name), n_train, args.batch_size))
            active.remove(run)
        if time.time() - last_report > 30 or not active:
            last_report = time.time()
            elapsed = time.time() - start
            print(f'  {done}/{total} steps, {elapsed / 60:.1f} min, ETA '
                  f'{elapsed / done * (total - done) / 60:.1f} min', flush=True)
    return saved


def slug(name: str) -> str:
    return name.lower().replace(' ', '_')


# --------------------------------------------------------------------------- evaluation
def load_checkpoint(path: str, config: Optional[str] = None):
    """(model, meta) of a checkpoint of this script (or of any model config given)."""
    ckpt = read_checkpoint(path)
    state, _ = model_state_dict(ckpt, path)
    meta = ckpt.get('meta', {}) if isinstance(ckpt.get('meta'), dict) else {}
    if config is not None:
        cfg = Config.fromfile(config).model.to_dict()
    elif 'model' in meta:
        cfg = meta['model']
    else:
        raise ValueError(f'{path} carries no model config (meta.model); pass --config with the '
                         'config the checkpoint was trained with')
    model = build_model(cfg)
    missing, _ = model.load_state_dict(state, strict=False)
    backbone_missing = [k for k in missing if k.startswith('backbone.')]
    if backbone_missing or not any(k.startswith('backbone.') for k in state):
        raise ValueError(f'{path}: the backbone weights do not match the config '
                         f'(missing {backbone_missing[:5]}...)')
    return model, dict(meta, checkpoint=path)


def evaluate_checkpoint(path: str, data: dict, args, device: torch.device,
                        config: Optional[str] = None) -> dict:
    model, meta = load_checkpoint(path, config)
    backbone = model.backbone.to(device)
    img_size = backbone.patch_resolution[0] * backbone.patch_embed.projection.stride[0]
    if img_size != data['size']:
        raise ValueError(f'{path}: the encoder expects {img_size} px, the evaluation data is '
                         f"{data['size']} px; pass --img-size {img_size}")
    start = time.perf_counter()
    train_f = extract_features(backbone, data['train_x'], MEAN, STD, args.eval_batch_size,
                               device)
    test_f = extract_features(backbone, data['test_x'], MEAN, STD, args.eval_batch_size, device)
    knn = knn_accuracy(train_f.to(device), data['train_y'], test_f, data['test_y'],
                       k=args.knn_k, temperature=args.knn_temperature)
    linear = linear_probe_accuracy(train_f, data['train_y'], test_f, data['test_y'],
                                   epochs=args.probe_epochs, batch_size=args.probe_batch_size,
                                   device=device)
    meta.pop('model', None)
    result = dict(meta, knn_top1=knn, linear_top1=linear, eval_s=time.perf_counter() - start)
    print(f"evaluated {osp.basename(path)}: k-NN {100 * knn:.2f} %, linear {100 * linear:.2f} %",
          flush=True)
    return result


def per_class(root: str, split: str, total: Optional[int]) -> Optional[int]:
    """Images per class for a class-balanced subset of ``total`` images (None: all)."""
    if not total:
        return None
    classes = list_image_folder(root, split)[2]
    return max(1, total // len(classes))


def load_pretrain_images(args) -> torch.Tensor:
    """The pre-training images: the train split only (class-balanced ``--train-images``)."""
    images, _, _ = load_image_folder(
        args.data_root, args.train_split, args.img_size,
        per_class(args.data_root, args.train_split, args.train_images), args.cache_dir)
    return images


def load_eval_data(args) -> dict:
    bank = per_class(args.data_root, args.train_split, args.eval_train_images)
    test = per_class(args.data_root, args.test_split, args.test_images)
    train_x, train_y, classes = load_image_folder(args.data_root, args.train_split, args.img_size,
                                                  bank, args.cache_dir)
    test_x, test_y, test_classes = load_image_folder(args.data_root, args.test_split,
                                                     args.img_size, test, args.cache_dir)
    if classes != test_classes:
        raise ValueError(f'the {args.train_split} and {args.test_split} splits of '
                         f'{args.data_root} have different class folders')
    return dict(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                classes=classes, size=args.img_size)


# --------------------------------------------------------------------------- summary
METRICS = {'knn_top1': 'k-NN', 'linear_top1': 'linear probe'}


def add_costs(results: List[dict], image_s: Dict[str, float], n_train: int) -> None:
    """ViT-B-equivalent cost of every checkpoint: seconds, and MAE-epochs."""
    for r in results:
        seconds = r['images_seen'] * image_s[r['method']]
        r['vitb_equiv_s'] = seconds
        r['vitb_equiv_mae_epochs'] = seconds / (image_s[REFERENCE] * n_train)


def aggregate(results: List[dict]) -> List[dict]:
    """Mean and spread over seeds per (method, budget)."""
    groups: Dict[tuple, List[dict]] = {}
    for r in results:
        groups.setdefault((r['method'], r['budget_epochs']), []).append(r)
    rows = []
    for (method, epochs), runs in sorted(groups.items(), key=lambda kv: kv[0][1]):
        row = dict(method=method, budget_epochs=epochs, seeds=sorted(r['seed'] for r in runs),
                   images_seen=runs[0]['images_seen'], epochs_seen=runs[0]['epochs_seen'],
                   train_s_mean=statistics.fmean(r['train_s'] for r in runs),
                   vitb_equiv_mae_epochs=runs[0].get('vitb_equiv_mae_epochs'),
                   vitb_equiv_s=runs[0].get('vitb_equiv_s'))
        for key in METRICS:
            values = [r[key] for r in runs]
            row[key] = dict(mean=statistics.fmean(values), min=min(values), max=max(values),
                            std=statistics.stdev(values) if len(values) > 1 else None,
                            values=values)
        rows.append(row)
    return rows


def cell(rows: List[dict], method: str, epochs) -> Optional[dict]:
    return next((r for r in rows
                 if r['method'] == method and math.isclose(r['budget_epochs'], epochs)), None)


def standard_error(row: dict, key: str, n_test: int) -> float:
    """Of a mean over seeds: the seeds' spread, but never below the test set's binomial error."""
    stats = row[key]
    p, n = stats['mean'], len(stats['values'])
    binomial = math.sqrt(max(p * (1 - p), 1e-12) / n_test) / math.sqrt(n)
    seeds = stats['std'] / math.sqrt(n) if stats['std'] is not None else 0.
    return max(binomial, seeds)


def difference_noise(a: dict, b: dict, key: str, n_test_a: int, n_test_b: int) -> float:
    """Twice the standard error of the difference of two means (rows of :func:`aggregate`)."""
    return 2 * math.hypot(standard_error(a, key, n_test_a), standard_error(b, key, n_test_b))


def compare(ours: dict, theirs: dict, key: str, n_test: int) -> dict:
    """Margin of two means, and whether it exceeds twice its standard error."""
    margin = ours[key]['mean'] - theirs[key]['mean']
    noise = difference_noise(ours, theirs, key, n_test, n_test)
    verdict = ('within noise' if abs(margin) <= noise else
               'LocalMIM ahead' if margin > 0 else 'MAE ahead')
    return dict(localmim=ours[key]['mean'], mae=theirs[key]['mean'], margin=margin,
                noise_2se=noise, met=margin >= 0, verdict=verdict)


def first_reach(rows: List[dict], budgets: List[float]) -> Dict[str, dict]:
    """Per method and metric: the first budget whose mean reaches MAE's mean at the largest."""
    final = cell(rows, REFERENCE, budgets[-1])
    out = {}
    if final is None:
        return out
    for method in sorted({r['method'] for r in rows}):
        out[method] = {}
        for key in METRICS:
            hit = next((r for r in sorted((r for r in rows if r['method'] == method and
                                           r['budget_epochs'] > 0),
                                          key=lambda r: r['budget_epochs'])
                        if r[key]['mean'] >= final[key]['mean']), None)
            out[method][key] = dict(target=final[key]['mean'], reached=hit is not None)
            if hit:
                out[method][key].update(
                    budget_epochs=hit['budget_epochs'], train_s=hit['train_s_mean'],
                    vitb_equiv_mae_epochs=hit['vitb_equiv_mae_epochs'])
    return out


def e_vs_3e(rows: List[dict], budgets: List[float], n_test: int) -> List[dict]:
    """LocalMIM at budget E against MAE at 3E, for every E with 3E among the budgets."""
    out = []
    for epochs in budgets:
        mae = cell(rows, REFERENCE, 3 * epochs)
        for method in LOCALMIM:
            ours = cell(rows, method, epochs)
            if mae is None or ours is None:
                continue
            out.append(dict(method=method, epochs=epochs, mae_epochs=3 * epochs,
                            **{key: compare(ours, mae, key, n_test) for key in METRICS}))
    return out


def ablation_table(results: List[dict], ablations: List[str],
                   budgets: List[float]) -> List[dict]:
    """Each ablation against full LocalMIM-HOG of the same seeds, per budget."""
    def runs(method, epochs):
        return [r for r in results
                if r['method'] == method and math.isclose(r['budget_epochs'], epochs)]

    out = []
    for epochs in budgets:
        for name in ablations:
            ablated = runs(name, epochs)
            seeds = sorted(r['seed'] for r in ablated)
            full = [r for r in runs('LocalMIM-HOG', epochs) if r['seed'] in seeds]
            if not ablated or len(full) != len(ablated):
                continue
            entry = dict(method=name, epochs=epochs, seeds=seeds)
            for key in METRICS:
                a = statistics.fmean(r[key] for r in ablated)
                f = statistics.fmean(r[key] for r in full)
                entry[key] = dict(ablation=a, full=f, margin=a - f)
            out.append(entry)
    return out


# --------------------------------------------------------------------------- report
def pct(value: Optional[float]) -> str:
    return '-' if value is None else f'{100 * value:.2f}'


def mean_spread(stats: dict) -> str:
    if len(stats['values']) == 1:
        return pct(stats['mean'])
    return f"{pct(stats['mean'])} ({pct(stats['min'])}-{pct(stats['max'])})"


def to_markdown(report: dict, header: str) -> str:
    s, proto = report['settings'], report['protocol']
    enc = proto['encoder']
    lines = [f"# Learning efficiency ({proto['name']} protocol): accuracy per pre-training cost",
             '',
             *geometry_lines(report), '', header,
             f"Pre-training: {report['num_train_images']} images of `{s['train_split']}` "
             f"({'class-balanced' if s['train_images'] else 'all'}), {proto['img_size']} px, "
             f"patch {proto['patch_size']}, encoder "
             f"ViT {enc['embed_dims']} wide x {enc['num_layers']} blocks ({enc['num_heads']} "
             f"heads), mask ratio {proto['mask_ratio']:g}, batch {s['batch_size']}, AdamW lr "
             f"{proto['peak_lr']:.2e}, warm-up {s['warmup_steps']} steps, each budget's last "
             f"{100 * s['cooldown']:.0f} % decaying to 1e-6 (warmup-stable-decay; every "
             f"checkpoint annealed). Seeds {s['seeds']} (ablations: {s['ablation_seeds']}). "
             f"Evaluation: k-NN (k={s['knn_k']}) and linear probe ({s['probe_epochs']} epochs), "
             f"bank / probe set {report['num_eval_train']} `{s['train_split']}` images, scored on "
             f"{report['num_eval_test']} `{s['test_split']}` images. Top-1 in %; with several "
             'seeds: mean (min-max).', '',
             '## Decoders and step costs', '',
             f"Decoders: {s['decoders']}. Forward multiply-adds per image (mmengine FlopAnalyzer); "
             f"step time per image at ViT-B/224: {report['step_costs']['method']}; the same rows "
             f"as `{report['step_costs']['equivalent_command']}`.", '',
             '| method | decoder (width / heads / depth x count) | encoder MFLOPs | decoder MFLOPs '
             '| decoder / encoder | at ViT-B/224 | ViT-B step s / image | vs MAE |',
             '|---|---|---|---|---|---|---|---|']
    image_s = report['step_costs']['image_s']
    for name, m in report['methods'].items():
        d, f = m['decoder'], m['flops']
        lines.append(
            f"| {name} | {d['embed_dims']} / {d['num_heads']} / {d['depth']} x {d['count']} | "
            f"{f['encoder'] / 1e6:.1f} | {f['decoder'] / 1e6:.1f} | {f['ratio']:.3f} | "
            f"{m['vitb_flops']['ratio']:.3f} | {image_s[name]:.4f} | "
            f"{image_s[name] / image_s[REFERENCE]:.2f} |")
    lines += ['', '## Accuracy per budget', '',
              '| method | epochs | wall-clock s | ViT-B-equiv. (MAE-epochs) | k-NN | linear |',
              '|---|---|---|---|---|---|']
    for row in sorted(report['aggregate'], key=lambda r: (order(r['method']),
                                                          r['budget_epochs'])):
        lines.append(f"| {row['method']} | {row['budget_epochs']:g} | "
                     f"{row['train_s_mean']:.0f} | {row['vitb_equiv_mae_epochs']:.2f} | "
                     f"{mean_spread(row['knn_top1'])} | {mean_spread(row['linear_top1'])} |")
    lines += ['', '(epochs 0: the random initialisation of each encoder.)', '',
              f"## Budget at which each method first reaches {REFERENCE}'s final accuracy", '',
              '| method | metric | target | epochs | wall-clock s | ViT-B-equiv. (MAE-epochs) |',
              '|---|---|---|---|---|---|']
    for method, metrics in report['first_reach'].items():
        for key, hit in metrics.items():
            where = (f"{hit['budget_epochs']:g} | {hit['train_s']:.0f} | "
                     f"{hit['vitb_equiv_mae_epochs']:.2f}" if hit['reached'] else
                     'not reached | - | -')
            lines.append(f"| {method} | {METRICS[key]} | {pct(hit['target'])} | {where} |")
    lines += ['', f'## LocalMIM at E against {REFERENCE} at 3E', '',
              '| LocalMIM | E | metric | LocalMIM@E | MAE@3E | margin | 2 s.e. | verdict |',
              '|---|---|---|---|---|---|---|---|']
    for c in report['e_vs_3e']:
        for key in METRICS:
            v = c[key]
            lines.append(f"| {c['method']} | {c['epochs']:g} | {METRICS[key]} | "
                         f"{pct(v['localmim'])} | {pct(v['mae'])} | {100 * v['margin']:+.2f} | "
                         f"{100 * v['noise_2se']:.2f} | {v['verdict']} |")
    if report['ablations']:
        lines += ['', '## Ablations of LocalMIM-HOG (against the full method, same seeds)', '',
                  '| ablation | epochs | k-NN | full k-NN | margin | linear | full linear | '
                  'margin |', '|---|---|---|---|---|---|---|---|']
        for a in report['ablations']:
            k, li = a['knn_top1'], a['linear_top1']
            lines.append(f"| {a['method']} | {a['epochs']:g} | {pct(k['ablation'])} | "
                         f"{pct(k['full'])} | {100 * k['margin']:+.2f} | {pct(li['ablation'])} | "
                         f"{pct(li['full'])} | {100 * li['margin']:+.2f} |")
    lines += ['', f"Plot: `{osp.basename(report['plot'])}`."]
    return '\n'.join(lines) + '\n'


def geometry_lines(report: dict) -> List[str]:
    """The protocol's geometry: input, patch, token grid and each method's target cells per
    supervised block, next to the same method's at ViT-B/16, 224 px (the paper's recipe)."""
    proto = report['protocol']
    grid = proto['img_size'] // proto['patch_size']
    lines = [f"**Protocol `{proto['name']}`: {proto['img_size']}-px inputs, patch "
             f"{proto['patch_size']} ({grid} x {grid} = {grid * grid} tokens), mask ratio "
             f"{proto['mask_ratio']:g}.** Target cell of each supervised block, this run | "
             'ViT-B/16 at 224 px (the recipe):', '']
    for name, m in report['methods'].items():
        lines.append(f"* {name}: {describe_taps(m['geometry'])} | "
                     f"{describe_taps(m['vitb_geometry'])}")
    return lines


def order(method: str) -> int:
    names = METHODS + ABLATIONS
    return names.index(method) if method in names else len(names)


def plot(report: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    axes_keys = [('epochs_seen', 'images seen (epochs)'),
                 ('train_s_mean', 'measured wall-clock (s)'),
                 ('vitb_equiv_mae_epochs', 'ViT-B/224-equivalent cost (MAE-epochs)')]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), dpi=90)
    methods = sorted({r['method'] for r in report['aggregate']}, key=order)
    for row_axes, key in zip(axes, METRICS):
        for ax, (x_key, x_label) in zip(row_axes, axes_keys):
            for method in methods:
                rows = sorted((r for r in report['aggregate'] if r['method'] == method),
                              key=lambda r: r['budget_epochs'])
                xs = [r[x_key] for r in rows]
                mean = [100 * r[key]['mean'] for r in rows]
                low = [100 * (r[key]['mean'] - r[key]['min']) for r in rows]
                high = [100 * (r[key]['max'] - r[key]['mean']) for r in rows]
                style = '--' if method in ABLATIONS else '-'
                ax.errorbar(xs, mean, yerr=[low, high], marker='o', ls=style, capsize=3,
                            label=method)
            ax.set_xlabel(x_label)
            ax.set_ylabel(f'{METRICS[key]} top-1 (%)')
            ax.grid(alpha=.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle('Accuracy per pre-training cost (error bars: min-max over seeds)')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict, header: str, stem: str) -> None:
    os.makedirs(osp.dirname(stem) or '.', exist_ok=True)
    report['plot'] = stem + '.png'
    plot(report, stem + '.png')
    write_outputs(stem, report, to_markdown(report, header))


# --------------------------------------------------------------------------- re-run check
# Settings that must agree for a re-run's figures to be comparable with a committed report's.
RERUN_SETTINGS = ('device', 'img_size', 'train_images', 'batch_size', 'blr', 'warmup_steps',
                  'cooldown', 'decoders', 'eval_train_images', 'test_images', 'probe_epochs',
                  'knn_k', 'knn_temperature', 'amp')


def rerun_rows(new: dict, committed: dict) -> List[dict]:
    """Every (method, budget) the two reports share, per metric: both means, their difference
    and twice its standard error (the seeds' spread of each, never below the test set's binomial
    error, as for :func:`e_vs_3e`)."""
    n_new, n_committed = new['num_eval_test'], committed['num_eval_test']
    rows = []
    for ours in sorted(new['aggregate'], key=lambda r: (order(r['method']), r['budget_epochs'])):
        theirs = cell(committed['aggregate'], ours['method'], ours['budget_epochs'])
        if theirs is None:
            continue
        for key in METRICS:
            difference = ours[key]['mean'] - theirs[key]['mean']
            noise = difference_noise(ours, theirs, key, n_new, n_committed)
            rows.append(dict(method=ours['method'], epochs=ours['budget_epochs'], metric=key,
                             committed=theirs[key]['mean'],
                             committed_2se=2 * standard_error(theirs, key, n_committed),
                             new=ours[key]['mean'], new_2se=2 * standard_error(ours, key, n_new),
                             difference=difference, noise_2se=noise,
                             within_noise=abs(difference) <= noise))
    return rows


def compare_reports(new_path: str, committed_path: str) -> dict:
    """Print the figures of a re-run next to a committed report's (``compare`` sub-command)."""
    with open(new_path) as f:
        new = json.load(f)
    with open(committed_path) as f:
        committed = json.load(f)
    differ = {k: (committed['settings'].get(k), new['settings'].get(k)) for k in RERUN_SETTINGS
              if committed['settings'].get(k) != new['settings'].get(k)}
    rows = rerun_rows(new, committed)
    print(f'{new_path} against {committed_path} (top-1 %; 2 s.e. of each mean, and of the '
          'difference)')
    for key, (theirs, ours) in differ.items():
        print(f'WARNING: setting {key} differs: committed {theirs}, re-run {ours}')
    print('| method | epochs | metric | committed (2 s.e.) | re-run (2 s.e.) | difference | '
          '2 s.e. | verdict |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['method']} | {r['epochs']:g} | {METRICS[r['metric']]} | "
              f"{pct(r['committed'])} ({pct(r['committed_2se'])}) | {pct(r['new'])} "
              f"({pct(r['new_2se'])}) | {100 * r['difference']:+.2f} | {pct(r['noise_2se'])} | "
              f"{'within noise' if r['within_noise'] else 'OUTSIDE NOISE'} |")
    if not rows:
        print('no (method, budget) in common')
    return dict(rows=rows, settings_differ=differ)


# --------------------------------------------------------------------------- CLI
def add_data_args(parser) -> None:
    parser.add_argument('--data-root', help='image-folder dataset: ROOT/<split>/<class>/<img>')
    parser.add_argument('--archive', help='a .tar.gz of such a folder, unpacked into --cache-dir '
                        '(then --data-root defaults to the unpacked folder, or to its only '
                        'sub-folder when the splits lie there, as in the Caltech archive)')
    parser.add_argument('--cache-dir', default=None,
                        help='where to unpack --archive and cache decoded images')
    parser.add_argument('--train-split', default='train')
    parser.add_argument('--test-split', default='test')
    parser.add_argument('--protocol', choices=list(PROTOCOLS), default='cifar',
                        help='cifar: the CIFAR-scale protocol (cpu: 32 px, patch 4, cells 1-8 '
                        'px; cuda: 224 px, patch 16); caltech128: ViT-B/16\'s target geometry '
                        '(128 px, patch 16, cells 4 / 8 / 16 / 32 px, every image of the folder)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu',
                        help='cpu: a 128-wide, 8-block ViT; cuda: ViT-S/16')
    parser.add_argument('--img-size', type=int, default=None,
                        help='image size (default: the protocol\'s: cifar 32 (cpu) / 224 '
                        '(cuda), caltech128 128; evaluate: the checkpoints\' own)')
    parser.add_argument('--eval-train-images', type=int, default=None,
                        help='k-NN bank / probe training images, class-balanced (default: the '
                        'pre-training set; 0: all)')
    parser.add_argument('--test-images', type=int, default=None,
                        help='test images, class-balanced (default: cifar 5000, caltech128 '
                        'all; 0: all)')
    parser.add_argument('--eval-batch-size', type=int, default=256)
    parser.add_argument('--knn-k', type=int, default=20)
    parser.add_argument('--knn-temperature', type=float, default=0.07)
    parser.add_argument('--probe-epochs', type=int, default=None, help='default 100')
    parser.add_argument('--probe-batch-size', type=int, default=None,
                        help='default: cpu 256, cuda 1024')
    parser.add_argument('--out-dir', default=None, help='folder of the report (default '
                        'docs/results; --quick and evaluate: work_dirs/benchmarks)')
    parser.add_argument('--tag', default=None, help='suffix of the report file names')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    run = sub.add_parser('run', help='pre-train every method, evaluate, report')
    add_data_args(run)
    run.add_argument('--budgets', type=float, nargs='+', default=None,
                     help='pre-training budgets in epochs of the pre-training set, increasing '
                     '(default: cifar cpu 4 8 12 16, cuda 2 4 6 8; caltech128 cpu 6 8 12 18 '
                     '24, cuda 20 40 60 80)')
    run.add_argument('--train-images', type=int, default=None,
                     help='pre-training images, class-balanced (default: cifar cpu 5000, cuda '
                     '20000; caltech128 all; 0: all)')
    run.add_argument('--batch-size', type=int, default=None, help='default: cpu 64, cuda 256')
    run.add_argument('--blr', type=float, default=1.5e-3, help='lr = blr * batch / 256')
    run.add_argument('--warmup-epochs', type=float, default=None,
                     help='linear warm-up (default: 5 %% of the largest budget)')
    run.add_argument('--cooldown', type=float, default=0.2,
                     help='share of each budget over which its lr decays')
    run.add_argument('--methods', nargs='+', choices=METHODS, default=None,
                     help=f'the methods to pre-train (default: all; {REFERENCE}, the reference, '
                     'is needed)')
    run.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    run.add_argument('--ablation-seeds', type=int, nargs='*', default=None,
                     help='seeds of the two ablations of LocalMIM-HOG (default: the first seed '
                     'when LocalMIM-HOG runs; none: skip)')
    run.add_argument('--decoders', choices=['flop-matched', 'unscaled'], default='flop-matched',
                     help='flop-matched: decoder widths giving the ViT-B/224 decoder / encoder '
                     'FLOP ratio; unscaled: the configs\' ViT-B decoders')
    run.add_argument('--work-dir', default=None, help='checkpoints (default '
                     'work_dirs/benchmarks/learning_efficiency[_TAG])')
    run.add_argument('--no-eval-init', dest='eval_init', action='store_false',
                     help='skip the random-initialisation reference')
    run.add_argument('--no-amp', dest='amp', action='store_false',
                     help='--device cuda: train in float32 instead of AMP (float16 autocast, '
                     'dynamic loss scale, as the recipes)')
    run.add_argument('--quick', action='store_true',
                     help='smoke run: 10 images per class, budgets of 1-4 epochs of batch 20, '
                     'one ViT-B step per method, 20-epoch probe')
    evaluate = sub.add_parser('evaluate', help='k-NN and linear probe of checkpoints')
    add_data_args(evaluate)
    evaluate.add_argument('checkpoints', nargs='+')
    evaluate.add_argument('--config', help='model config when the checkpoint has no meta.model')
    compare = sub.add_parser('compare', help='a re-run (e.g. one budget) against a committed '
                             'report: every (method, budget) of both, with its noise')
    compare.add_argument('new', help='the JSON report of the re-run')
    compare.add_argument('committed', nargs='?', default='docs/results/learning_efficiency.json',
                         help='the JSON report to compare with (default: %(default)s)')
    args = parser.parse_args(argv)
    if args.command == 'compare':
        return args
    resolve_defaults(parser, args)
    if args.archive:
        args.data_root = unpack(args.archive, args.cache_dir, args.data_root,
                                args.train_split)
    if not args.data_root:
        parser.error('give --data-root (or --archive with --cache-dir)')
    return args


def resolve_defaults(parser, args) -> None:
    """Fill unset options from the device protocol (and --quick); check them."""
    scale = dict(PROTOCOLS[args.protocol]['scales'][args.device])
    quick = getattr(args, 'quick', False)
    if quick:
        scale.update(QUICK)
    args.scale = scale
    if args.command == 'evaluate' and args.img_size is None:
        args.img_size = checkpoints_img_size(parser, args.checkpoints)
    args.img_size = args.img_size or scale['img_size']
    scale['img_size'] = args.img_size
    args.probe_epochs = args.probe_epochs or scale['probe_epochs']
    args.probe_batch_size = args.probe_batch_size or scale['probe_batch_size']
    args.test_images = scale['test_images'] if args.test_images is None else args.test_images
    args.out_dir = args.out_dir or ('docs/results' if args.command == 'run' and not quick
                                    else 'work_dirs/benchmarks')
    try:
        output_stem(args.out_dir, PROTOCOLS[args.protocol]['report'], args.tag)
    except ValueError as err:
        parser.error(str(err))
    if args.command != 'run':
        return
    args.budgets = args.budgets or scale['budgets']
    args.train_images = (scale['train_images'] if args.train_images is None
                         else args.train_images)
    args.eval_train_images = (args.train_images if args.eval_train_images is None
                              else args.eval_train_images)
    args.batch_size = args.batch_size or scale['batch_size']
    args.amp = args.amp and args.device == 'cuda'
    args.step_cost = scale['step_cost']
    args.methods = [m for m in METHODS if m in (args.methods or METHODS)]
    if REFERENCE not in args.methods:
        parser.error(f'--methods {" ".join(args.methods)}: {REFERENCE} is the reference of every '
                     'comparison and cost; add it')
    hog = 'LocalMIM-HOG' in args.methods  # the ablations are compared with it
    args.ablation_seeds = ((args.seeds[:1] if hog else []) if args.ablation_seeds is None
                           else args.ablation_seeds)
    args.work_dir = args.work_dir or osp.join(
        'work_dirs', 'benchmarks', PROTOCOLS[args.protocol]['report']
        + (f'_{args.tag}' if args.tag else '') + ('_quick' if quick else ''))
    if any(b <= 0 for b in args.budgets) or sorted(set(args.budgets)) != args.budgets:
        parser.error(f'--budgets={args.budgets} must be positive and strictly increasing')
    if not 0 < args.cooldown < 1:
        parser.error(f'--cooldown={args.cooldown} must lie in (0, 1)')
    if args.batch_size < 1 or not args.seeds:
        parser.error(f'--batch-size={args.batch_size} must be >= 1 and --seeds non-empty')
    warmup_epochs = (0.05 * args.budgets[-1] if args.warmup_epochs is None
                     else args.warmup_epochs)
    args.warmup_epochs = warmup_epochs


def checkpoints_img_size(parser, paths: List[str]) -> Optional[int]:
    """The image size the checkpoints were trained at (their ``meta.model``); None when they
    carry no config (then the protocol's size, or --img-size)."""
    sizes = {}
    for path in paths:
        if not osp.isfile(path):
            parser.error(f'checkpoint {path!r} does not exist; give the .pth files of a run')
        meta = read_checkpoint(path).get('meta', {})
        if isinstance(meta, dict) and 'model' in meta:
            sizes[path] = meta['model']['backbone']['img_size']
    if len(set(sizes.values())) > 1:
        parser.error(f'the checkpoints were trained at different image sizes ({sizes}); '
                     'evaluate each size in its own call')
    return next(iter(sizes.values()), None)


def unpack(archive: str, cache_dir: Optional[str], data_root: Optional[str],
           split: str = 'train') -> str:
    """Unpack ``archive`` into ``cache_dir`` once; the data root is the unpacked folder, or its
    only sub-folder when the splits lie one level down (``NAME/{train,test}/...``)."""
    if not cache_dir:
        raise SystemExit('--archive needs --cache-dir (where to unpack it)')
    target = unpack_once(archive, osp.join(cache_dir, osp.basename(archive).split('.')[0]))
    if data_root:
        return data_root
    subdirs = [d for d in os.listdir(target) if osp.isdir(osp.join(target, d))]
    if not osp.isdir(osp.join(target, split)) and len(subdirs) == 1:
        return osp.join(target, subdirs[0])
    return target


class Phases:
    """Wall-clock of each phase of the run (reported, and printed as it ends)."""

    def __init__(self):
        self.seconds: Dict[str, float] = {}

    def run(self, name: str, fn, *args):
        start = time.time()
        result = fn(*args)
        self.seconds[name] = round(time.time() - start, 1)
        print(f'[{name}: {self.seconds[name]:.1f} s]', flush=True)
        return result


def pick_device(name: str) -> torch.device:
    if name == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device is visible to torch; run on a GPU '
                         'machine or use --device cpu')
    return torch.device(name)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.command == 'compare':
        return compare_reports(args.new, args.committed)
    if args.threads:
        torch.set_num_threads(args.threads)
    init_default_scope('mmpretrain')
    MMLogger.get_current_instance().setLevel('ERROR')  # init_weights logs every parameter
    device = pick_device(args.device)
    provenance = Provenance.start('learning_efficiency', argv, torch.get_num_threads(),
                                  device=args.device, quick=getattr(args, 'quick', False))
    data = load_eval_data(args)
    if args.command == 'evaluate':
        return evaluate_only(args, data, device, provenance)

    images = load_pretrain_images(args)
    n_train = len(images)
    args.warmup_steps = max(1, round(args.warmup_epochs * n_train / args.batch_size))
    budgets = schedule(args, n_train)
    ablations = ABLATIONS if args.ablation_seeds else []
    phases = Phases()
    vitb_models = phases.run('building ViT-B/224 models', build_vitb_models,
                             args.methods + ablations)
    plan = phases.run('decoder planning', plan_methods, args.methods + ablations, args.scale,
                      args.decoders, vitb_models)
    step_costs = phases.run('ViT-B step costs', measure_step_costs, vitb_models, args, device)
    del vitb_models
    runs = ([(m, s) for m in args.methods for s in args.seeds]
            + [(m, s) for m in ablations for s in args.ablation_seeds])
    checkpoints = phases.run('pre-training', pretrain, plan, runs, images.to(device), args,
                             device)
    results = phases.run('evaluation', lambda: [
        evaluate_checkpoint(c['checkpoint'], data, args, device) for c in checkpoints])
    add_costs(results, step_costs['image_s'], n_train)
    rows = aggregate(results)
    report = dict(
        settings={k: v for k, v in vars(args).items()
                  if isinstance(v, (int, float, str, list, type(None)))},
        protocol=dict(name=args.protocol, encoder=args.scale['encoder'],
                      img_size=args.img_size, patch_size=args.scale['patch_size'],
                      mask_ratio=mask_ratio(plan), peak_lr=args.blr * args.batch_size / 256,
                      budgets=budgets),
        methods={name: {k: v for k, v in p.items()} for name, p in plan.items()},
        step_costs=step_costs, num_train_images=n_train, num_eval_train=len(data['train_x']),
        num_eval_test=len(data['test_x']), phase_wall_s=phases.seconds, results=results,
        aggregate=rows, first_reach=first_reach(rows, args.budgets),
        e_vs_3e=e_vs_3e(rows, args.budgets, len(data['test_x'])),
        ablations=ablation_table(results, ablations, args.budgets))
    report = dict(provenance=provenance.finish(), **report)
    write_report(report, provenance.markdown(),
                 output_stem(args.out_dir, PROTOCOLS[args.protocol]['report'], args.tag))
    return report


def mask_ratio(plan: Dict[str, dict]) -> float:
    """The mask ratio of every method (one value: it is not a per-method setting here)."""
    ratios = {p['config']['backbone']['mask_ratio'] for p in plan.values()}
    if len(ratios) != 1:
        raise ValueError(f'the methods mask different shares of the patches ({sorted(ratios)}); '
                         'the comparison needs one mask ratio for all')
    return ratios.pop()


def evaluate_only(args, data: dict, device: torch.device, provenance: Provenance) -> dict:
    results = [evaluate_checkpoint(p, data, args, device, args.config)
               for p in args.checkpoints]
    report = dict(data_root=args.data_root, results=results)
    report = dict(provenance=provenance.finish(), **report)
    stem = output_stem(args.out_dir, 'evaluation', args.tag)
    write_json(stem + '.json', report)
    for r in results:
        print(f"{r['checkpoint']}: k-NN {100 * r['knn_top1']:.2f} %, "
              f"linear {100 * r['linear_top1']:.2f} %")
    print(f'wrote {stem}.json')
    return report


if __name__ == '__main__':
    main()
