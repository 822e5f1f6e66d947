"""The training step never waits for the device: no host synchronisation in forward or backward.

On a GPU, ``Tensor.item``, ``.cpu``, ``.tolist``, ``.numpy`` and a tensor's truth / int / float
value each wait for every queued kernel; at batch 256 on 8 GPUs such a stall per stage or per
step idles the GPUs. Here each of them is patched to raise while the loss of every masked model
is computed and back-propagated, with masks drawn from a generator (as ``RNGStateHook`` sets one
up) and from the global RNG.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import localmim_mm  # noqa: F401

from .amp_helpers import random_batch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'vit': 'configs/localmim/localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py',
    'swin': 'configs/localmim/localmim_swin-tiny_1xb32-coslr-20e_sample.py',
    'lomar': 'configs/lomar/lomar_vit-tiny-p8_1xb32-coslr-20e_sample.py',
}
SYNCING = ('item', 'cpu', 'tolist', 'numpy', '__bool__', '__int__', '__float__', '__index__')


class HostSync(RuntimeError):
    pass


@pytest.fixture
def no_host_sync(monkeypatch):
    """While active, every tensor-to-host conversion raises ``HostSync`` naming the call."""
    def forbid(name):
        def raising(self, *args, **kwargs):
            raise HostSync(f'Tensor.{name} called in the training step (host synchronisation)')
        return raising

    def activate():
        for name in SYNCING:
            monkeypatch.setattr(torch.Tensor, name, forbid(name))

    return activate


def build(name: str, batch: int = 3):
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, CONFIGS[name]))
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(random_batch(batch, cfg.model.backbone.img_size), True)
    return model, data


@pytest.mark.parametrize('generator', [False, True], ids=['global-rng', 'mask-generator'])
@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_forward_and_backward_never_sync(name, generator, no_host_sync):
    torch.manual_seed(0)
    model, data = build(name)
    if generator:
        model.backbone.mask_generator = torch.Generator().manual_seed(3)
    no_host_sync()
    losses = model.loss(data['inputs'], data['data_samples'])
    total = torch.stack(list(losses.values())).sum()
    total.backward()
    assert model.backbone.patch_embed.projection.weight.grad is not None


def test_the_patch_catches_a_sync(no_host_sync):
    """The check itself works: a loss that is read on the host is caught."""
    no_host_sync()
    with pytest.raises(HostSync, match='Tensor.item'):
        torch.ones(2).sum().item()
    with pytest.raises(HostSync, match='__bool__'):
        if torch.ones(1) > 0:
            pass
