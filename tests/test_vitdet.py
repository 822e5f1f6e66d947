"""ViTDet backbone: windowed attention against loop references, loading, configs, training."""
import json
import os
import os.path as osp
import tarfile

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from .conftest import REPO, SHARED_DATA, train

import localmim_mm  # noqa: F401
import localmim_mm.det  # noqa: F401
import localmim_mm.transfer  # noqa: F401
from localmim_mm.det.vitdet_attention import WindowedRelPosAttention

DET = osp.join(REPO, 'configs', 'benchmarks', 'mmdetection')
VITDET_B = osp.join(DET, 'mask-rcnn_vit-base-p16-vitdet_sfp_8xb8-amp-lsj-100e_coco.py')
VITDET_TINY = osp.join(DET, 'mask-rcnn_vit-tiny-p8-vitdet_sfp_1xb2-tiny_coco-mini.py')
NEW_TABLES = ['layers.*.attn.rel_pos_?']


def _models():
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    return MODELS


def _attention(window_size, rel_pos_size=(14, 14), embed_dims=16, num_heads=2, seed=0):
    """An attention block with random weights, random q/k/v biases and random bias tables."""
    torch.manual_seed(seed)
    attn = WindowedRelPosAttention(embed_dims, num_heads, window_size=window_size,
                                   rel_pos_size=rel_pos_size)
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.5)
    return attn.eval()


def _reference(attn, x, windows):
    """Loop reference: for every window (a list of (row, col) token positions), plain softmax
    attention among its tokens with the bias ``q_i . R_h[y_i - y_j] + q_i . R_w[x_i - x_j]`` read
    from the tables by offset; tokens outside the list do not exist for it."""
    heads, dims = attn.num_heads, attn.head_dims
    out = torch.zeros_like(x)
    for positions in windows:
        rows = torch.tensor([p[0] for p in positions])
        cols = torch.tensor([p[1] for p in positions])
        tokens = x[:, rows, cols]  # (B, n, C)
        q, k, v = attn.qkv(tokens).reshape(x.shape[0], len(positions), 3, heads, dims).unbind(2)
        center_h = (attn.rel_pos_h.shape[0] - 1) // 2
        center_w = (attn.rel_pos_w.shape[0] - 1) // 2
        table_h = attn.rel_pos_h[rows[:, None] - rows[None, :] + center_h]  # (n, n, dims)
        table_w = attn.rel_pos_w[cols[:, None] - cols[None, :] + center_w]
        logits = (torch.einsum('bihc,bjhc->bhij', q, k) * dims**-0.5
                  + torch.einsum('bihc,ijc->bhij', q, table_h)
                  + torch.einsum('bihc,ijc->bhij', q, table_w))
        mixed = torch.einsum('bhij,bjhc->bihc', logits.softmax(-1), v).flatten(2)
        out[:, rows, cols] = attn.proj(mixed)
    return out


def _window_positions(height, width, size):
    return [[(r, c) for r in range(top, min(top + size, height))
             for c in range(left, min(left + size, width))]
            for top in range(0, height, size) for left in range(0, width, size)]


def test_windowed_attention_is_global_attention_within_each_window():
    attn = _attention(window_size=4)
    x = torch.randn(2, 7, 10, 16)  # 7 x 10 map: the last window row and column are padded
    expected = _reference(attn, x, _window_positions(7, 10, 4))
    torch.testing.assert_close(attn(x), expected, atol=1e-4, rtol=1e-4)


def test_global_attention_with_tables_resampled_to_the_input_grid():
    attn = _attention(window_size=0, rel_pos_size=(5, 6))
    x = torch.randn(1, 5, 6, 16)  # the grid the tables were made for: no resampling
    everything = [[(r, c) for r in range(5) for c in range(6)]]
    torch.testing.assert_close(attn(x), _reference(attn, x, everything), atol=1e-4, rtol=1e-4)
    # on a 3 x 4 grid the tables are linearly resampled from 9 / 11 rows to 5 / 7 rows
    small = torch.randn(1, 3, 4, 16)
    resampled = _attention(window_size=0, rel_pos_size=(3, 4))
    resampled.load_state_dict({k: v for k, v in attn.state_dict().items()
                               if 'rel_pos' not in k}, strict=False)
    with torch.no_grad():
        for name, rows in (('rel_pos_h', 5), ('rel_pos_w', 7)):
            table = getattr(attn, name)
            # linear resampling with half-pixel centres (align_corners=False)
            positions = ((torch.arange(rows) + 0.5) * table.shape[0] / rows - 0.5).clamp(min=0)
            low = positions.floor().long().clamp(max=table.shape[0] - 1)
            high = (low + 1).clamp(max=table.shape[0] - 1)
            frac = (positions - low)[:, None]
            getattr(resampled, name).copy_(table[low] * (1 - frac) + table[high] * frac)
    grid = [[(r, c) for r in range(3) for c in range(4)]]
    torch.testing.assert_close(attn(small), _reference(resampled, small, grid), atol=1e-4,
                               rtol=1e-4)


def test_padding_does_not_leak_into_real_tokens(monkeypatch):
    """A 5 x 6 map in one 8 x 8 window with zero tables is plain global attention over its 30
    tokens: mmpretrain's MultiheadAttention with the same weights. An unmasked padded key would
    take softmax weight (its logit is 0, not -inf) and change every real token's output."""
    from mmpretrain.models.utils import MultiheadAttention
    attn = _attention(window_size=8)
    with torch.no_grad():
        attn.rel_pos_h.zero_()
        attn.rel_pos_w.zero_()
    plain = MultiheadAttention(16, 2).eval()
    plain.load_state_dict(attn.state_dict(), strict=False)
    x = torch.randn(2, 5, 6, 16)
    expected = plain(x.flatten(1, 2)).reshape(2, 5, 6, 16)
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)
    # the check can fail: without the padding mask the padded keys leak
    monkeypatch.setattr(attn, '_padding_flags', lambda *args: None)
    assert not torch.allclose(attn(x), expected, atol=1e-3)


def test_attention_runs_in_the_fused_flash_kernel():
    """No block needs the math fallback of scaled_dot_product_attention (which stores the
    (N, N) attention matrix): restricted to the flash kernel, window (padded) and global blocks
    run forward and backward, in float32 and under bfloat16 autocast."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    for window, grid in ((4, (7, 10)), (0, (5, 6))):
        attn = _attention(window_size=window, rel_pos_size=grid).train()
        for autocast in (False, True):
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), torch.autocast(
                    'cpu', dtype=torch.bfloat16, enabled=autocast):
                out = attn(torch.randn(2, *grid, 16))
            out.float().sum().backward()
            assert attn.rel_pos_h.grad.abs().sum() > 0


def _tiny_vitdet(**kwargs):
    cfg = dict(type='ViTDet', arch=dict(embed_dims=32, num_layers=4, num_heads=2,
                                        feedforward_channels=64),
               img_size=32, patch_size=8, input_size=64, window_size=8,
               global_attn_indexes=(1, 3), out_indices=(1, 3))
    cfg.update(kwargs)
    return _models().build(cfg)


def test_fresh_vitdet_computes_the_plain_vit_without_class_token():
    """Zero tables and windows covering the whole map: exactly mmpretrain's VisionTransformer
    (with its pos_embed resized to the input grid), whatever the padding of the windows."""
    from mmpretrain.models import VisionTransformer
    torch.manual_seed(0)
    vitdet = _tiny_vitdet()
    vitdet.eval()
    plain = VisionTransformer(arch=dict(embed_dims=32, num_layers=4, num_heads=2,
                                        feedforward_channels=64),
                              img_size=32, patch_size=8, out_indices=(1, 3), out_type='featmap',
                              with_cls_token=False, final_norm=False)
    plain.eval()  # (mmpretrain's backbones' train() returns None)
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_(0, 0.3)
    missing = vitdet.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == sorted(f'layers.{i}.attn.rel_pos_{a}' for i in range(4)
                                     for a in 'hw')
    x = torch.randn(2, 3, 48, 40)  # 6 x 5 grid, one padded 8 x 8 window
    for ours, theirs in zip(vitdet(x), plain(x)):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    ref = _tiny_vitdet(window_size=2, drop_path_rate=0.2)
    ckpt = _tiny_vitdet(window_size=2, drop_path_rate=0.2, with_cp=True)
    ckpt.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 40, 48)
    grads = []
    for model in (ref, ckpt):
        torch.manual_seed(1)  # same drop-path draws
        sum(o.square().sum() for o in model(x)).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert set(grads[0]) == set(grads[1])
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_vitdet_settings_and_errors():
    model = _tiny_vitdet(drop_path_rate=0.3)
    windows = [layer.attn.window_size for layer in model.layers]
    assert windows == [8, 0, 8, 0]
    # global tables for the 64-px input grid (8 x 8), window tables for the window
    assert model.layers[1].attn.rel_pos_h.shape == (15, 16)
    assert model.layers[0].attn.rel_pos_h.shape == (15, 16)
    assert [layer.attn.out_drop.drop_prob for layer in model.layers] == pytest.approx(
        [0, 0.1, 0.2, 0.3])
    assert not any(layer.attn.rel_pos_w.detach().any() for layer in model.layers)
    vitdet_b = _models().build(dict(type='ViTDet', arch='base'))
    assert [i for i, layer in enumerate(vitdet_b.layers) if layer.attn.window_size == 0] == [
        2, 5, 8, 11]
    with pytest.raises(ValueError, match='global_attn_indexes'):
        _tiny_vitdet(global_attn_indexes=(4, ))
    with pytest.raises(ValueError, match='global_attn_indexes'):
        _tiny_vitdet(global_attn_indexes=None)  # a dict arch has no default
    with pytest.raises(ValueError, match='with_cls_token'):
        _tiny_vitdet(with_cls_token=True)
    frozen = _tiny_vitdet(frozen_stages=2)
    assert not any(p.requires_grad for p in frozen.layers[1].attn.parameters())
    assert all(p.requires_grad for p in frozen.layers[2].attn.parameters())


def test_layer_decay_covers_the_new_tables():
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(VITDET_TINY)
    cfg.model.backbone.init_cfg = None
    model = _models().build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    base, rate = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    groups = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    # 8 blocks -> depths 0 (stem) .. 9 (neck, heads); block i has depth i + 1
    assert groups['backbone.layers.0.attn.rel_pos_h']['lr'] == pytest.approx(base * rate**8)
    assert groups['backbone.layers.7.attn.rel_pos_w']['lr'] == pytest.approx(base * rate**1)
    assert groups['backbone.pos_embed']['lr'] == pytest.approx(base * rate**9)
    assert len(groups) == sum(1 for p in model.parameters() if p.requires_grad)
    # the full recipe: no weight decay on pos_embed, biases and norms, 0.1 on tables and weights
    full = Config.fromfile(VITDET_B)
    full.model.backbone.init_cfg = None
    full.optim_wrapper.type = 'OptimWrapper'  # AMP needs a GPU; the groups are the same
    full.optim_wrapper.pop('loss_scale')
    groups = {g['param_name']: g for g in build_optim_wrapper(
        _models().build(full.model), full.optim_wrapper).optimizer.param_groups}
    decay = {n: g['weight_decay'] for n, g in groups.items()}
    assert decay['backbone.pos_embed'] == 0 and decay['backbone.layers.3.attn.qkv.bias'] == 0
    assert decay['backbone.layers.3.ln1.weight'] == 0
    assert decay['backbone.layers.3.attn.rel_pos_h'] == decay['backbone.layers.3.attn.qkv.weight']
    assert decay['backbone.layers.3.attn.qkv.weight'] == pytest.approx(0.1)


def test_vit_base_recipe():
    cfg = Config.fromfile(VITDET_B)
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.window_size, backbone.global_attn_indexes) == (
        'ViTDet', 14, (2, 5, 8, 11))
    assert backbone.drop_path_rate == 0.1 and backbone.input_size == (1024, 1024)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.1
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.7
    assert cfg.model.roi_head.bbox_head.type == 'Shared4Conv1FCBBoxHead'
    assert cfg.model.roi_head.bbox_head.norm_cfg.type == 'LN2d'
    assert cfg.model.roi_head.mask_head.norm_cfg.type == 'LN2d'
    assert cfg.model.rpn_head.num_convs == 2
    # 100 epochs of COCO train2017 (118k images) at 64 images per iteration
    images = cfg.train_cfg.max_iters * cfg.auto_scale_lr.base_batch_size
    assert 99 <= images / 118_000 <= 101
    assert 8 * cfg.train_dataloader.batch_size == cfg.auto_scale_lr.base_batch_size


def _backbone_tensors(path):
    state = torch.load(path, map_location='cpu', weights_only=True)['state_dict']
    return {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}


def _check_loaded(backbone, source):
    """Every checkpoint tensor but the class token is in the backbone unchanged (pos_embed
    without its class entry); the relative position tables are new and zero."""
    loaded = backbone.state_dict()
    assert set(source) - set(loaded) == {'cls_token'}
    for name, value in source.items():
        if name == 'pos_embed':
            value = value[:, 1:]  # the class token's position
        if name != 'cls_token':
            assert torch.equal(loaded[name], value), name
    new = set(loaded) - set(source)
    assert new and all(n.endswith(('attn.rel_pos_h', 'attn.rel_pos_w')) for n in new)
    assert not any(loaded[n].any() for n in new)


def test_vit_base_config_loads_a_localmim_vit_checkpoint(tmp_path):
    from localmim_mm.models.backbones import LocalMIMViT
    from localmim_mm.transfer import load_pretrained
    source = LocalMIMViT(arch='base', img_size=224, patch_size=16).state_dict()
    path = str(tmp_path / 'localmim_vit-base.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in source.items()}}, path)
    cfg = Config.fromfile(VITDET_B)
    cfg.model.backbone.init_cfg.checkpoint = path
    backbone = _models().build(cfg.model.backbone)
    backbone.init_weights()
    _check_loaded(backbone, {k: v for k, v in source.items() if k != 'mask_token'})
    report = load_pretrained(_models().build(cfg.model.backbone), path, 'backbone.', NEW_TABLES)
    assert len(report.loaded) == 148 - 1 and len(report.missing_allowed) == 24
    assert sorted(report.unexpected) == sorted(k for k in ('cls_token', 'mask_token')
                                               if k in source)


def test_tiny_config_loads_every_encoder_tensor(tiny_localmim_checkpoint):
    cfg = Config.fromfile(VITDET_TINY)
    cfg.model.backbone.init_cfg.checkpoint = tiny_localmim_checkpoint
    backbone = _models().build(cfg.model.backbone)
    backbone.init_weights()
    _check_loaded(backbone, _backbone_tensors(tiny_localmim_checkpoint))


@pytest.fixture(scope='module')
def coco_mini(tmp_path_factory):
    archive = osp.join(SHARED_DATA, 'coco_mini.tar.gz')
    if not osp.isfile(archive):
        pytest.skip(f'{archive} is absent (the shared COCO subset; not in a fresh clone)')
    dest = tmp_path_factory.mktemp('coco')
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter='data')
    return str(dest / 'coco_mini') + '/'


def test_lsj_pipeline_makes_1024_squares(coco_mini):
    from mmdet.registry import DATASETS
    cfg = Config.fromfile(VITDET_B)
    _models()
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = coco_mini
        if loader is cfg.train_dataloader:
            loader.dataset.ann_file = 'annotations/instances_val2017.json'
            loader.dataset.data_prefix = dict(img='val2017/')
        sample = DATASETS.build(loader.dataset)[0]
        assert tuple(sample['inputs'].shape) == (3, 1024, 1024)


def test_train_two_iterations_and_evaluate(tiny_localmim_checkpoint, coco_mini, tmp_path):
    work_dir = tmp_path / 'vitdet'
    proc = train(VITDET_TINY, work_dir, '--cfg-options',
                 f'model.backbone.init_cfg.checkpoint={tiny_localmim_checkpoint}',
                 f'train_dataloader.dataset.data_root={coco_mini}',
                 f'val_dataloader.dataset.data_root={coco_mini}',
                 f'val_evaluator.ann_file={coco_mini}annotations/instances_val2017.json',
                 'train_dataloader.dataset.indices=4', 'val_dataloader.dataset.indices=2',
                 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1')
    log = proc.stdout + proc.stderr
    # 99 checkpoint tensors (all but cls_token) + 16 new tables
    assert 'LoudPretrained: loaded 99 of 115 tensors of ViTDet' in log
    assert 'new (allowed missing): 16' in log and 'checkpoint tensors not used: 1: cls_token' in log
    assert 'Epoch(train) [1][2/2]' in log
    run = next(d for d in os.listdir(work_dir) if osp.isdir(work_dir / d / 'vis_data'))
    with open(work_dir / run / 'vis_data' / 'scalars.json') as f:
        metrics = [json.loads(line) for line in f if 'coco/bbox_mAP' in line]
    assert metrics and 0 <= metrics[-1]['coco/segm_mAP'] <= 1


def test_memory_benchmark_smoke(tmp_path):
    """``tools.benchmarks.vitdet_memory`` end to end at 64 px with ``--with-cp --tag`` (no figure is
    checked, only the report: both backbones, the ratios, the with_cp label, the tagged file names
    and the header with the load-average warning rule)."""
    import sys
    from .conftest import run_tool
    run_tool([sys.executable, '-m', 'tools.benchmarks.vitdet_memory', '--quick', '--size', '64',
              '--warmup', '0', '--threads', '1', '--with-cp', '--tag', 'smoke', '--out-dir',
              str(tmp_path)])
    with open(tmp_path / 'vitdet_memory_smoke.json') as f:
        result = json.load(f)
    assert [row['backbone'] for row in result['rows']] == ['global', 'vitdet']
    assert all(row['peak_step_mb'] > 0 and row['step_s_median'] > 0 for row in result['rows'])
    assert set(result['ratio_vitdet_to_global']) == {'memory', 'time'}
    header = result['provenance']
    assert 'tools.benchmarks.vitdet_memory' in header['command'] and header['git']['commit']
    assert header['machine']['torch_threads'] == 1 and header['quick']
    assert result['with_cp'] and '--with-cp' in header['command']
    markdown = (tmp_path / 'vitdet_memory_smoke.md').read_text()
    assert 'Load average (1/5/15 min) before' in markdown and 'ViTDet / global' in markdown
    assert '| vitdet, with_cp |' in markdown and '| global |' in markdown


def test_memory_benchmark_refuses_a_bad_tag_before_measuring():
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, '-m', 'tools.benchmarks.vitdet_memory', '--tag', 'a b'],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--tag='a b'" in proc.stderr
    assert 'letters, digits' in proc.stderr
    assert '[vitdet_memory]' not in proc.stdout  # no backbone was started
