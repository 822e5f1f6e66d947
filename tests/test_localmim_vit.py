"""LocalMIM ViT modules against independent references (spec sections 2 and 4)."""
import math

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

import localmim_mm  # noqa: F401
from localmim_mm.models.utils import scale_mask

from .conftest import TINY_VIT_CONFIG


# ----------------------------------------------------------------------------- HOG reference
def reference_hog(img: np.ndarray, nbins: int, cell: int, bias=(0., 0.)) -> np.ndarray:
    """Straight loops over pixels: Sobel (reflect pad, cross-correlation) plus the scale's
    (gx, gy) bias shared by the colours, unsigned hard binning floor(atan2(gx, gy) / pi * nbins)
    mod nbins, k x k average per cell, L2 over the bins of each colour.
    img: (3, H, W) -> (cells, 3*nbins)."""
    kx = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float64)
    ky = kx.T
    _, h, w = img.shape
    out = np.zeros((h // cell, w // cell, 3, nbins))
    for c in range(3):
        padded = np.pad(img[c].astype(np.float64), 1, mode='reflect')
        for i in range(h):
            for j in range(w):
                window = padded[i:i + 3, j:j + 3]
                gx = (window * kx).sum() + float(bias[0])
                gy = (window * ky).sum() + float(bias[1])
                angle = math.atan2(gx, gy)
                b = int(math.floor(angle / math.pi * nbins)) % nbins
                out[i // cell, j // cell, c, b] += math.hypot(gx, gy) / cell**2
    norms = np.sqrt((out**2).sum(-1, keepdims=True))
    out = out / np.maximum(norms, 1e-12)
    return out.reshape(-1, 3 * nbins)


def test_hog_matches_loop_reference_on_random_images():
    gen = MODELS.build(dict(type='MultiScaleHOGGenerator', nbins=9, cell_sizes=[4, 8, 16]))
    img = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    targets = gen(img)
    for k, target in zip([4, 8, 16], targets):
        assert target.shape == (2, (16 // k)**2, 27)
        for b in range(2):
            ref = reference_hog(img[b].numpy(), 9, k)
            np.testing.assert_allclose(target[b].numpy(), ref, rtol=1e-4, atol=1e-5)


def test_hog_nbins18_and_non_square_image():
    gen = MODELS.build(dict(type='MultiScaleHOGGenerator', nbins=18, cell_sizes=[8]))
    img = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(1))
    (target, ) = gen(img)
    np.testing.assert_allclose(target[0].numpy(), reference_hog(img[0].numpy(), 18, 8),
                               rtol=1e-4, atol=1e-5)


def test_vertical_edge_energy_in_expected_bin():
    # Dark left half, bright right half: gx = -4 at the edge, gy = 0, so atan2(gx, gy) = -pi/2,
    # floor(-0.5 * 9) = -5, which is bin 4 modulo 9.
    img = torch.zeros(1, 3, 8, 8)
    img[..., 4:] = 1.0
    (target, ) = MODELS.build(dict(type='MultiScaleHOGGenerator', nbins=9, cell_sizes=[8]))(img)
    hist = target.view(3, 9)
    assert torch.allclose(hist[:, 4], torch.ones(3))
    assert torch.count_nonzero(hist[:, [0, 1, 2, 3, 5, 6, 7, 8]]) == 0


def test_hog_bias_one_frozen_pair_per_scale():
    """The release gives each scale its own Conv2d(1, 2, 3) with a (2,) bias, shared by the
    colours: a (scales, 2) buffer in the state dict, each scale's target built with its row."""
    gen = MODELS.build(dict(type='MultiScaleHOGGenerator', nbins=18, cell_sizes=[4, 8, 8],
                            hog_bias=True))
    assert 'hog_bias' in gen.state_dict()
    assert gen.hog_bias.shape == (3, 2) and gen.hog_bias.abs().max() <= 1 / 3
    assert not any(p.requires_grad for p in gen.parameters())
    assert not torch.equal(gen.hog_bias[1], gen.hog_bias[2])  # independent draws
    img = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    targets = gen(img)
    for k, bias, target in zip([4, 8, 8], gen.hog_bias, targets):
        ref = reference_hog(img[0].numpy(), 18, k, bias.tolist())
        np.testing.assert_allclose(target[0].numpy(), ref, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(targets[1], targets[2])  # same cell size, other bias
    assert 'hog_bias' not in MODELS.build(
        dict(type='MultiScaleHOGGenerator', cell_sizes=[4])).state_dict()


def test_zero_gradients_bin_alike_for_both_signs():
    """Identical rows: gy is zero in exact arithmetic at every pixel, so every pixel's angle is
    +-pi/2, bin 9 of 18 for either sign of gx. (A convolution leaves rounding residues of
    either sign in gy here, which scatter such pixels over bins 8 and 9.)"""
    row = torch.randn(1, 3, 1, 32, generator=torch.Generator().manual_seed(4)) * 3
    img = row.expand(1, 3, 32, 32).contiguous()
    (target, ) = MODELS.build(dict(type='MultiScaleHOGGenerator', nbins=18,
                                   cell_sizes=[32]))(img)
    hist = target.view(3, 18)
    torch.testing.assert_close(hist[:, 9], torch.ones(3))
    assert torch.count_nonzero(hist[:, [b for b in range(18) if b != 9]]) == 0


def exact_sobel(uint8_imgs: np.ndarray):
    """Integer Sobel gradients (gx, gy) of 8-bit pixels, reflect padding: exact. Normalising an
    image divides both by the channel's std, so the release's bin formula applied to these gives
    the bins of the normalised image in exact arithmetic."""
    p = np.pad(uint8_imgs.astype(np.int64), ((0, 0), (0, 0), (1, 1), (1, 1)), mode='reflect')
    h, w = uint8_imgs.shape[-2:]

    def tap(i, j):
        return p[..., i:i + h, j:j + w]

    gx = tap(0, 0) - tap(0, 2) + 2 * (tap(1, 0) - tap(1, 2)) + tap(2, 0) - tap(2, 2)
    gy = tap(0, 0) - tap(2, 0) + 2 * (tap(0, 1) - tap(2, 1)) + tap(0, 2) - tap(2, 2)
    return gx, gy


@pytest.mark.parametrize('nbins', [9, 18])
def test_hog_bins_equal_exact_arithmetic_on_real_images(nbins):
    """Every pixel with a gradient lands in the bin the release's formula gives in exact
    arithmetic, exact-edge pixels (a zero gradient component: border rows, flat rows of
    upsampled images) included; no window moves any other pixel."""
    from localmim_mm.models.target_generators.multiscale_hog import sobel_gradients
    uint8_imgs = load_sample_images(8, size=96, normalized=False)
    gx, gy = sobel_gradients(normalize(torch.from_numpy(uint8_imgs).float()))
    gen = MODELS.build(dict(type='MultiScaleHOGGenerator', nbins=nbins, cell_sizes=[1]))
    hist = gen.cell_histograms(gx, gy, 1).view(*gx.shape[:2], nbins, *gx.shape[2:])

    exact_gx, exact_gy = exact_sobel(uint8_imgs)
    position = np.arctan2(exact_gx, exact_gy) / np.pi * nbins
    expected = np.floor(position).astype(np.int64) % nbins
    moving = (exact_gx != 0) | (exact_gy != 0)
    assert np.array_equal((hist.sum(2) > 0).numpy(), moving)
    assert np.array_equal(hist.argmax(2).numpy()[moving], expected[moving])
    on_edge = moving & ((exact_gx == 0) | (exact_gy == 0))
    assert on_edge.mean() > 0.01  # the exact-edge cases are really in the test


def test_pixel_targets_match_manual_cells():
    gen = MODELS.build(dict(type='MultiScalePixelGenerator', cell_sizes=[2, 4], norm_pix=True))
    img = torch.randn(1, 3, 8, 8)
    small, large = gen(img)
    assert small.shape == (1, 16, 12) and large.shape == (1, 4, 48)
    # Cell (row 1, col 0) at k=4: rows 4..7, cols 0..3, ordered (row, col, colour).
    cell = img[0, :, 4:8, 0:4].permute(1, 2, 0).reshape(-1)
    expected = (cell - cell.mean()) / (cell.var() + 1e-6).sqrt()
    torch.testing.assert_close(large[0, 2], expected)


def normalize(imgs: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    return (imgs - mean) / std


def load_sample_images(count, size=64, normalized=True):
    """Shipped sample images as 8-bit (B, 3, H, W) arrays, or normalised like the data
    preprocessor."""
    import glob
    import os.path as osp
    from PIL import Image
    root = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data/sample_cifar/val')
    files = sorted(glob.glob(osp.join(root, '*/*.jpg')))[:count]
    imgs = np.stack([np.asarray(Image.open(f).convert('RGB').resize((size, size),
                                                                    Image.BICUBIC))
                     for f in files])
    imgs = np.ascontiguousarray(imgs.transpose(0, 3, 1, 2))
    return normalize(torch.from_numpy(imgs).float()) if normalized else imgs


# ----------------------------------------------------------------------------- masks
def test_mask_mapping_per_scale():
    mask = torch.tensor([[[1., 0.], [0., 1.]]])
    up4 = scale_mask(mask, 4)
    assert up4.shape == (1, 8, 8) and up4.sum() == 2 * 16
    assert torch.all(up4[0, :4, :4] == 1) and torch.all(up4[0, :4, 4:] == 0)
    assert torch.equal(scale_mask(mask, 1), mask)
    grid = torch.tensor([[[1., 1., 0., 0.], [1., 0., 0., 0.], [0., 0., 1., 1.],
                          [0., 0., 1., 1.]]])
    half = scale_mask(grid, 0.5)
    assert torch.equal(half, torch.tensor([[[0.75, 0.], [0., 1.]]]))


def test_masking_counts_and_raster_order():
    vit = MODELS.build(dict(type='LocalMIMViT', arch='deit-tiny', img_size=224,
                            out_indices=[1, 3, 9, 11]))
    x = torch.randn(3, 196, 8)
    visible, mask, ids_restore = vit.random_masking(x, 0.75)
    assert visible.shape == (3, 49, 8)
    assert torch.all(mask.sum(1) == 147)
    for b in range(3):
        kept = torch.nonzero(mask[b] == 0).squeeze(1)
        torch.testing.assert_close(visible[b], x[b, kept])  # raster order
    # ids_restore un-shuffles [visible, masked] back to raster positions (MAE semantics).
    shuffled = torch.cat([visible, torch.zeros(3, 147, 8)], 1)
    restored = torch.gather(shuffled, 1, ids_restore.unsqueeze(-1).expand(-1, -1, 8))
    torch.testing.assert_close(restored * (1 - mask).unsqueeze(-1),
                               x * (1 - mask).unsqueeze(-1))


def test_masks_differ_per_sample():
    vit = MODELS.build(dict(type='LocalMIMViT', arch='deit-tiny'))
    _, mask, _ = vit.random_masking(torch.randn(4, 196, 8), 0.75)
    assert len({tuple(m.tolist()) for m in mask}) == 4


# ----------------------------------------------------------------------------- model
def build_localmim(arch='deit-tiny', img_size=224, target='hog', **backbone):
    cfg = dict(
        type='LocalMIM',
        backbone=dict(type='LocalMIMViT', arch=arch, img_size=img_size, patch_size=16,
                      **backbone),
        neck=dict(type='MultiLayerNeck', in_channels=192, num_layers=4),
        head=dict(type='LocalMIMHead', in_channels=192, target_channels=27,
                  scales=[4, 2, 1, 0.5], embed_dims=64, num_heads=4),
        target_generator=dict(type='MultiScaleHOGGenerator', nbins=9,
                              cell_sizes=[4, 8, 16, 32]))
    if target == 'pixel':
        cfg['head']['target_channels'] = [48, 192, 768, 3072]
        cfg['target_generator'] = dict(type='MultiScalePixelGenerator',
                                       cell_sizes=[4, 8, 16, 32])
    model = MODELS.build(cfg)
    model.init_weights()
    return model


@pytest.mark.parametrize('size', [(224, 224), (160, 224)])
def test_decoder_output_shapes(size):
    model = build_localmim()
    h, w = size[0] // 16, size[1] // 16
    feats, mask, _ = model.backbone(torch.randn(2, 3, *size), mask=True)
    assert mask.shape == (2, h, w)
    assert all(f.shape == (2, 1 + int(h * w * 0.25), 192) for f in feats)
    preds = model.head(model.neck(feats), mask)
    expected = [(4 * h, 4 * w), (2 * h, 2 * w), (h, w), (h // 2, w // 2)]
    assert [tuple(p.shape) for p in preds] == [(2, 27, *hw) for hw in expected]
    targets = model.target_generator(torch.randn(2, 3, *size))
    assert [t.shape[1] for t in targets] == [a * b for a, b in expected]


def test_loss_keys_and_pixel_target():
    model = build_localmim(target='pixel')
    losses = model.loss(torch.randn(2, 3, 224, 224), None)
    assert sorted(losses) == ['loss_block1', 'loss_block11', 'loss_block3', 'loss_block9']
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())


def test_loss_zero_for_perfect_prediction_and_masked_only():
    head = MODELS.build(dict(type='LocalMIMHead', in_channels=8, target_channels=5,
                             scales=[2, 1, 0.5], embed_dims=16, num_heads=2))
    mask = torch.zeros(2, 4, 4)
    mask[:, :2] = 1  # top half masked
    grids = [(8, 8), (4, 4), (2, 2)]
    targets = [torch.randn(2, h * w, 5) for h, w in grids]
    perfect = [t.transpose(1, 2).reshape(2, 5, h, w) for t, (h, w) in zip(targets, grids)]
    assert all(loss == 0 for loss in head.loss_by_pred(perfect, targets, mask))

    visible_noise = [p.clone() for p in perfect]
    for p, (h, w) in zip(visible_noise, grids):
        p[:, :, h // 2:] += 5.0  # bottom half = visible cells only
    assert all(loss == 0 for loss in head.loss_by_pred(visible_noise, targets, mask))

    masked_noise = [p.clone() for p in perfect]
    for p, (h, w) in zip(masked_noise, grids):
        p[:, :, :h // 2] += 1.0
    # Every masked cell is off by 1 in every channel: the mean squared error is exactly 1.
    for loss in head.loss_by_pred(masked_noise, targets, mask):
        torch.testing.assert_close(loss, torch.tensor(1.0))


def test_soft_mask_weights_at_half_scale():
    head = MODELS.build(dict(type='LocalMIMHead', in_channels=8, target_channels=1,
                             scales=[0.5], embed_dims=16, num_heads=2))
    mask = torch.tensor([[[1., 1.], [1., 0.]]])  # one 2x2 cell, 3 of 4 patches masked
    target = torch.zeros(1, 1, 1)
    pred = torch.full((1, 1, 1, 1), 2.0)
    (loss, ) = head.loss_by_pred([pred], [target], mask)
    torch.testing.assert_close(loss, torch.tensor(4.0))  # 0.75 * 4 / 0.75


def test_loss_module_equals_the_release_formula_to_the_bit():
    """The head scores through mmpretrain's ``PixelReconstructionLoss``; losses and gradients
    equal the release's masked MSE written out (``((pred - target) ** 2).mean(-1)``, weighted
    by the mask at the target grid, divided by the mask sum) bit for bit, soft masks included."""
    torch.manual_seed(0)
    head = MODELS.build(dict(type='LocalMIMHead', in_channels=8, target_channels=27,
                             scales=[4, 2, 1, 0.5], embed_dims=16, num_heads=2))
    mask = (torch.rand(3, 4, 4) < 0.75).float()
    grids = [(16, 16), (8, 8), (4, 4), (2, 2)]
    targets = [torch.randn(3, h * w, 27) for h, w in grids]
    preds = [torch.randn(3, 27, h, w, requires_grad=True) for h, w in grids]
    losses = head.loss_by_pred(preds, targets, mask)
    for pred, target, loss, scale in zip(preds, targets, losses, [4, 2, 1, 0.5]):
        weights = (torch.nn.functional.interpolate(mask[:, None], scale_factor=scale)
                   if scale >= 1 else torch.nn.functional.avg_pool2d(mask[:, None], 2))
        weights = weights.flatten(1)
        flat = pred.flatten(2).transpose(1, 2)
        expected = ((flat - target) ** 2).mean(dim=-1).mul(weights).sum() / weights.sum()
        assert torch.equal(loss, expected)
        grad, = torch.autograd.grad(loss, pred)
        expected_grad, = torch.autograd.grad(expected, pred)
        assert torch.equal(grad, expected_grad)


def test_isolate_grad_stops_gradients_below_each_tap():
    model = build_localmim(isolate_grad=True)
    losses = model.loss(torch.randn(2, 3, 224, 224), None)
    losses['loss_block11'].backward()
    layers = model.backbone.layers
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in layers[9].parameters())
    assert all(p.grad is None for p in model.backbone.patch_embed.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in layers[10].parameters())

    model = build_localmim(isolate_grad=False)
    model.loss(torch.randn(2, 3, 224, 224), None)['loss_block11'].backward()
    assert model.backbone.patch_embed.projection.weight.grad.abs().sum() > 0


def test_default_taps_follow_depth():
    assert MODELS.build(dict(type='LocalMIMViT', arch='l')).out_indices == [1, 3, 21, 23]
    assert MODELS.build(dict(type='LocalMIMViT', arch='b')).out_indices == [1, 3, 9, 11]


def test_backbone_keys_load_into_vision_transformer():
    model = build_localmim()
    backbone = {k[len('backbone.'):]: v for k, v in model.state_dict().items()
                if k.startswith('backbone.')}
    vit = VisionTransformer(arch='deit-tiny', img_size=224, patch_size=16, final_norm=False,
                            out_type='avg_featmap')
    missing, unexpected = vit.load_state_dict(backbone, strict=False)
    assert unexpected == []
    assert [k for k in missing if not k.startswith('ln2')] == []  # ln2: the new fine-tune norm
    for k, v in backbone.items():
        torch.testing.assert_close(vit.state_dict()[k], v)


@pytest.mark.parametrize('bad, message', [
    (dict(out_indices=[1, 3, 9, 12]), 'tap index 12'),
    (dict(out_indices=[1, 3, 3, 11]), 'duplicate'),
    (dict(mask_ratio=1.0), 'mask_ratio'),
    (dict(img_size=200), 'img_size=200'),
])
def test_bad_backbone_settings(bad, message):
    with pytest.raises(ValueError, match=message):
        MODELS.build(dict(type='LocalMIMViT', arch='b', **bad))


def test_bad_head_and_target_settings():
    with pytest.raises(ValueError, match='scale 3'):
        MODELS.build(dict(type='LocalMIMHead', in_channels=8, target_channels=1, scales=[3]))
    with pytest.raises(ValueError, match='nbins=0'):
        MODELS.build(dict(type='MultiScaleHOGGenerator', nbins=0))
    with pytest.raises(ValueError, match='cell_sizes'):
        build_cfg = Config.fromfile(TINY_VIT_CONFIG).model
        build_cfg.target_generator.cell_sizes = [4, 8, 16, 32]
        MODELS.build(build_cfg)
    with pytest.raises(ValueError, match='equal length'):
        build_cfg = Config.fromfile(TINY_VIT_CONFIG).model
        build_cfg.head.scales = [4, 2, 1]
        build_cfg.head.target_channels = 27
        MODELS.build(build_cfg)


def test_training_steps_lower_the_loss():
    """A few dozen AdamW steps of the tiny config on the shipped sample images."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    cfg = Config.fromfile(TINY_VIT_CONFIG)
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    history = []
    for _ in range(3):
        for data in loader:
            data = model.data_preprocessor(data, training=True)
            loss = sum(model.loss(data['inputs'], data['data_samples']).values())
            optim.zero_grad()
            loss.backward()
            optim.step()
            history.append(loss.item())
    assert len(history) == 30
    assert np.mean(history[-5:]) < 0.7 * np.mean(history[:5])
