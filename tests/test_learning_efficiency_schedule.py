"""The optimisation of ``tools.benchmarks.learning_efficiency`` (mmengine's optimiser wrapper from
the pre-training recipe, ``LinearLR`` + ``CosineAnnealingLR``) against the rules its committed
figures were computed with, restated here: the lr of every step of every run (warm-up, peak, each
budget's half-cosine decay), and which parameters are under weight decay. Nothing is trained: the
runs' training step is replaced by a stub that records the lr."""
import argparse
import math

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from tools.benchmarks import learning_efficiency as le

TINY_SCALE = dict(encoder=dict(embed_dims=32, num_layers=8, num_heads=2, feedforward_channels=128),
                  img_size=32, patch_size=8)
TINY_DECODER = dict(embed_dims=16, num_heads=1)
MIN_LR, WEIGHT_DECAY = 1e-6, 0.05


def former_lr(step: int, peak: float, warmup: int, decay) -> float:
    """Linear warm-up over ``warmup`` steps, then ``peak``; over ``decay = (start, end)`` a half
    cosine from ``peak`` to ``MIN_LR``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if decay is None or step < decay[0]:
        return peak
    progress = min((step - decay[0]) / max(decay[1] - decay[0], 1), 1.)
    return MIN_LR + (peak - MIN_LR) * 0.5 * (1 + math.cos(math.pi * progress))


def former_weight_decay(name: str, param: torch.Tensor) -> float:
    """No decay on 1-D (or 0-D) parameters, tokens and position embeddings."""
    return 0. if param.ndim <= 1 or name.endswith(('token', 'pos_embed')) else WEIGHT_DECAY


@pytest.fixture(autouse=True)
def scope():
    init_default_scope('mmpretrain')
    MMLogger.get_current_instance().setLevel('ERROR')  # the constructor logs every parameter


def test_the_lr_of_every_step_is_the_former_rule(tmp_path, monkeypatch):
    """The committed CIFAR run's schedule (5,000 images, batch 64, warm-up 62 steps, 20 %
    cool-down) for its two first budgets, 4 and 8 epochs: the trunk, its branch and its decay."""
    seen = []

    def record(run):
        lrs = {group['lr'] for group in run.wrapper.optimizer.param_groups}
        assert len(lrs) == 1, lrs
        seen.append((run.budget['epochs'] if run.budget else None, run.steps, lrs.pop()))
        return 0.

    monkeypatch.setattr(le.Run, '_train_step', record)
    args = argparse.Namespace(blr=1.5e-3, batch_size=64, warmup_steps=62, cooldown=0.2, amp=False,
                              budgets=[4, 8], seeds=[0], eval_init=False, work_dir=str(tmp_path))
    images = torch.zeros(5000, 3, 32, 32, dtype=torch.uint8)
    plan = {'MAE': dict(config=le.model_config('MAE', TINY_SCALE, TINY_DECODER))}
    saved = le.pretrain(plan, [('MAE', 0)], images, args, torch.device('cpu'))

    budgets = {b['epochs']: b for b in le.schedule(args, len(images))}
    assert [(b['steps'], b['decay']) for b in budgets.values()] == [(312, (250, 312)),
                                                                     (625, (500, 625))]
    assert [c['steps'] for c in saved] == [312, 625]
    peak = 1.5e-3 * 64 / 256
    for epochs, step, lr in seen:
        decay = budgets[epochs]['decay'] if epochs else None
        assert lr == pytest.approx(former_lr(step, peak, 62, decay), rel=1e-9, abs=1e-15), \
            (epochs, step)
    steps = {epochs: sorted(s for e, s, _ in seen if e == epochs) for epochs in (None, 4, 8)}
    assert steps == {None: list(range(500)), 4: list(range(250, 312)), 8: list(range(500, 625))}
    assert seen[0][2] == pytest.approx(peak / 62) and seen[-1][2] < 1e-5


def test_the_optimiser_is_the_recipes_at_the_scaled_lr():
    fp32, amp = le.optim_wrapper_cfg(3.75e-4, amp=False), le.optim_wrapper_cfg(3.75e-4, amp=True)
    assert fp32['type'] == 'OptimWrapper' and 'loss_scale' not in fp32
    assert (amp['type'], amp['loss_scale']) == ('AmpOptimWrapper', 'dynamic')
    for cfg in (fp32, amp):
        optimizer = cfg['optimizer']
        assert (optimizer['type'], optimizer['lr'], tuple(optimizer['betas']),
                optimizer['weight_decay']) == ('AdamW', 3.75e-4, (0.9, 0.95), WEIGHT_DECAY)
        assert cfg['paramwise_cfg'] == le.recipe().optim_wrapper.paramwise_cfg.to_dict()
    assert le.recipe().param_scheduler[-1]['eta_min'] == MIN_LR


@pytest.mark.parametrize('method', le.METHODS + le.ABLATIONS)
def test_weight_decay_falls_on_the_former_parameters(method):
    model = le.build_model(le.model_config(method, TINY_SCALE, TINY_DECODER))
    wrapper = build_optim_wrapper(model, le.optim_wrapper_cfg(1e-3, amp=False))
    names = {id(p): name for name, p in model.named_parameters()}
    got = {names[id(p)]: group['weight_decay'] for group in wrapper.optimizer.param_groups
           for p in group['params']}
    expected = {name: former_weight_decay(name, p) for name, p in model.named_parameters()
                if p.requires_grad}
    assert got == expected
    assert {0., WEIGHT_DECAY} == set(expected.values())
