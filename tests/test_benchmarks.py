"""Benchmarks: the evaluators against hand-made cases, FLOP counts and schedules computed by
hand, the provenance header, and smoke runs of the ``--quick`` modes."""
import argparse
import glob
import json
import math
import os
import os.path as osp
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from localmim_mm.evaluation import knn_accuracy, knn_predict, linear_probe_accuracy
from tools.benchmarks import gpu_acceptance as ga
from tools.benchmarks import learning_efficiency as le
from tools.benchmarks import release_parity
from tools.benchmarks import throughput as tp
from tools.benchmarks.core import provenance as prov
from tools.benchmarks.core import timing
from tools.benchmarks.core.report import output_stem

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SAMPLE = osp.join(REPO, 'data', 'sample_cifar')


def _clusters(n_per_class=50, num_classes=5, dims=16, seed=0):
    """Well separated classes: class c lies around the unit vector e_c (cosine ~ 1 inside)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(num_classes, dims) * 10
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    feats = centers[labels] + 0.1 * torch.randn(len(labels), dims, generator=g)
    return feats, labels


@pytest.mark.parametrize('temperature', [0.07, None])
def test_knn_separable_is_perfect(temperature):
    train_x, train_y = _clusters(seed=0)
    test_x, test_y = _clusters(n_per_class=20, seed=1)
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=20,
                        temperature=temperature) == 1.0


def test_knn_shuffled_labels_is_chance():
    train_x, train_y = _clusters(n_per_class=200, num_classes=5, seed=0)
    test_x, test_y = _clusters(n_per_class=200, num_classes=5, seed=1)
    shuffled = train_y[torch.randperm(len(train_y), generator=torch.Generator().manual_seed(2))]
    acc = knn_accuracy(train_x, shuffled, test_x, test_y, k=20)
    # chance is 1/5; 1000 test points give a binomial std of ~1.3 %
    assert abs(acc - 0.2) < 0.06


def test_knn_majority_vote_by_hand():
    bank = torch.tensor([[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9], [0.2, 0.8]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    query = torch.tensor([[1., 0.05], [0.05, 1.]])
    # k=3 neighbours of the first query: rows 0, 1 (label 0) and 4 (label 1) -> 0
    assert knn_predict(bank, labels, query, k=3, temperature=None).tolist() == [0, 1]
    with pytest.raises(ValueError, match='k=9'):
        knn_predict(bank, labels, query, k=9)


def test_linear_probe_separable_and_shuffled():
    train_x, train_y = _clusters(seed=0)
    test_x, test_y = _clusters(n_per_class=40, seed=1)
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y, epochs=200) == 1.0
    rand_x = torch.randn(1000, 16, generator=torch.Generator().manual_seed(3))
    rand_y = torch.randint(0, 5, (1000,), generator=torch.Generator().manual_seed(4))
    acc = linear_probe_accuracy(rand_x[:500], rand_y[:500], rand_x[500:], rand_y[500:],
                                epochs=20)
    assert abs(acc - 0.2) < 0.08


def test_random_resized_crop_identity_and_flip():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) % 251
    g = torch.Generator().manual_seed(0)
    out = le.random_resized_crop(images.to(torch.uint8), 8, g, scale=(1., 1.), ratio=(1., 1.),
                                 flip=False)
    torch.testing.assert_close(out, images.to(torch.uint8).float(), atol=1e-3, rtol=0)
    out = le.random_resized_crop(images.to(torch.uint8), 16, g, scale=(0.2, 1.))
    assert out.shape == (2, 3, 16, 16) and out.min() >= 0 and out.max() <= 255


# --------------------------------------------------------------------------- learning efficiency
TINY_ENCODER = dict(embed_dims=32, num_layers=8, num_heads=2, feedforward_channels=128)


def _tiny_scale(num_layers=8):
    return dict(encoder=dict(TINY_ENCODER, num_layers=num_layers), img_size=32, patch_size=8)


def test_forward_flops_of_mae_by_hand():
    init_default_scope('mmpretrain')
    cfg = le.model_config('MAE', _tiny_scale(num_layers=2), dict(embed_dims=16, num_heads=2))
    flops = le.forward_flops(le.build_model(cfg), 32)
    d, w, p = 32, 16, 8
    patches, seen = 16, 4 + 1  # 25 % of the 4 x 4 patches stay visible, plus the cls token

    def block(n, dims):  # qkv + proj + MLP (ratio 4), q k^T and a v, two LayerNorms (5 / element)
        return n * 12 * dims * dims + 2 * n * n * dims + 2 * 5 * n * dims

    encoder = patches * 3 * p * p * d + 2 * block(seen, d) + 5 * seen * d  # + final norm
    tokens = patches + 1  # the decoder sees every patch and the cls token
    decoder = seen * d * w + 8 * block(tokens, w) + 5 * tokens * w + tokens * w * 3 * p * p
    assert (flops['encoder'], flops['decoder'], flops['target']) == (encoder, decoder, 0)


def test_decoder_heads_keep_32_channels_per_head():
    # the ViT-B decoders: LocalMIM 256 wide / 8 heads, MAE 512 / 16
    assert [le.decoder_heads(w) for w in (256, 512, 112, 32, 20)] == [8, 16, 4, 1, 1]


def test_flop_matched_width_is_the_closest_one():
    init_default_scope('mmpretrain')
    scale, target = _tiny_scale(), 0.5

    def ratio(width):
        cfg = le.model_config('LocalMIM-HOG', scale,
                              dict(embed_dims=width, num_heads=le.decoder_heads(width)))
        return le.forward_flops(le.build_model(cfg), 32)['ratio']

    chosen = le.flop_matched_decoder('LocalMIM-HOG', scale, target)
    width = chosen['embed_dims']
    assert chosen['flops']['ratio'] == pytest.approx(ratio(width))
    assert abs(ratio(width) - target) <= abs(ratio(width - 4) - target)
    assert abs(ratio(width) - target) <= abs(ratio(width + 4) - target)


def _pool_args(tmp_path, name, budgets):
    return argparse.Namespace(blr=1.5e-3, batch_size=8, warmup_steps=2, cooldown=0.2, amp=False,
                              budgets=budgets, seeds=[0], eval_init=False,
                              work_dir=str(tmp_path / name))


def test_a_branch_of_the_pool_trains_like_a_run_of_its_own(tmp_path):
    """The 2-epoch checkpoint of a pool (LocalMIM and MAE interleaved, budgets 2 and 4 epochs)
    is bit-identical to a run of LocalMIM alone with the single budget of 2 epochs."""
    init_default_scope('mmpretrain')
    scale = _tiny_scale()
    plan = {name: dict(config=le.model_config(name, scale, dict(embed_dims=16, num_heads=1)))
            for name in ('LocalMIM-HOG', 'MAE')}
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    cpu = torch.device('cpu')
    pool = le.pretrain(plan, [('LocalMIM-HOG', 0), ('MAE', 0)], images,
                       _pool_args(tmp_path, 'pool', [2, 4]), cpu)
    alone = le.pretrain({'LocalMIM-HOG': plan['LocalMIM-HOG']}, [('LocalMIM-HOG', 0)], images,
                        _pool_args(tmp_path, 'alone', [2]), cpu)
    assert [(c['method'], c['budget_epochs'], c['steps']) for c in pool] == [
        ('LocalMIM-HOG', 2, 10), ('MAE', 2, 10), ('LocalMIM-HOG', 4, 20), ('MAE', 4, 20)]

    def weights(meta):
        return torch.load(meta['checkpoint'], weights_only=True)['state_dict']

    branch, single, longer = weights(pool[0]), weights(alone[0]), weights(pool[2])
    assert all(torch.equal(branch[k], single[k]) for k in single)
    assert not all(torch.equal(branch[k], longer[k]) for k in branch)
    assert pool[0]['loss_last20'] == alone[0]['loss_last20']


def _result(method, seed, epochs, knn, linear):
    return dict(method=method, seed=seed, budget_epochs=epochs, images_seen=100 * epochs,
                epochs_seen=epochs, train_s=10. * epochs, knn_top1=knn, linear_top1=linear)


def test_summary_by_hand():
    results = [_result('MAE', 0, 1, .30, .50), _result('MAE', 1, 1, .32, .52),
               _result('MAE', 0, 3, .40, .60), _result('MAE', 1, 3, .42, .62),
               _result('LocalMIM-HOG', 0, 1, .45, .60), _result('LocalMIM-HOG', 1, 1, .47, .61),
               _result('LocalMIM-HOG', 0, 3, .50, .70), _result('LocalMIM-HOG', 1, 3, .52, .72),
               _result('LocalMIM-HOG top tap', 0, 1, .35, .55)]
    le.add_costs(results, {'MAE': 2., 'LocalMIM-HOG': 1., 'LocalMIM-HOG top tap': .5}, 100)
    # 100 images x 1 s / (2 s x 100 images) = half an MAE-epoch per LocalMIM epoch
    assert results[4]['vitb_equiv_mae_epochs'] == pytest.approx(.5)
    rows = le.aggregate(results)
    hog1 = le.cell(rows, 'LocalMIM-HOG', 1)
    assert hog1['knn_top1']['mean'] == pytest.approx(.46)
    assert hog1['knn_top1']['std'] == pytest.approx(math.sqrt(2) * .01)
    reach = le.first_reach(rows, [1, 3])
    # MAE's final: k-NN .41, linear .61; LocalMIM-HOG at 1 epoch: .46 / .605
    assert reach['LocalMIM-HOG']['knn_top1']['budget_epochs'] == 1
    assert reach['LocalMIM-HOG']['linear_top1']['budget_epochs'] == 3
    assert reach['MAE']['knn_top1']['budget_epochs'] == 3
    assert not reach['LocalMIM-HOG top tap']['linear_top1']['reached']
    (hog, ) = [c for c in le.e_vs_3e(rows, [1, 3], n_test=10000) if c['method'] == 'LocalMIM-HOG']
    # k-NN: margin .05; each mean's s.e. = seed std / sqrt(2) = .01 > the binomial .0035
    assert hog['knn_top1']['margin'] == pytest.approx(.05)
    assert hog['knn_top1']['noise_2se'] == pytest.approx(2 * math.sqrt(2) * .01)
    assert hog['knn_top1']['verdict'] == 'LocalMIM ahead'
    # linear: .605 vs .61 (margin -.005) is within noise
    assert hog['linear_top1']['verdict'] == 'within noise' and not hog['linear_top1']['met']
    (ablation, ) = le.ablation_table(results, ['LocalMIM-HOG top tap'], [1, 3])
    assert ablation['seeds'] == [0]  # compared with LocalMIM-HOG of seed 0 only
    assert ablation['knn_top1']['margin'] == pytest.approx(.35 - .45)


@pytest.mark.skipif(not osp.isdir(SAMPLE), reason='data/sample_cifar is not present')
def test_learning_efficiency_quick(tmp_path):
    report = le.main(['run', '--quick', '--data-root', SAMPLE, '--test-split', 'val',
                      '--budgets', '1', '3', '--out-dir', str(tmp_path),
                      '--work-dir', str(tmp_path / 'work')])
    for ext in ('json', 'md', 'png'):
        assert (tmp_path / f'learning_efficiency.{ext}').stat().st_size > 0
    saved = json.loads((tmp_path / 'learning_efficiency.json').read_text())
    assert saved['provenance']['quick'] and saved['provenance']['load_before']
    assert saved['provenance']['git']['commit']
    methods = le.METHODS + le.ABLATIONS
    assert set(saved['methods']) == set(methods)
    for name, m in saved['methods'].items():  # decoders sized to the ViT-B FLOP ratio
        assert m['flops']['ratio'] == pytest.approx(m['vitb_flops']['ratio'], rel=.25), name
        assert saved['step_costs']['image_s'][name] > 0
    trained = [r for r in saved['results'] if r['budget_epochs'] > 0]
    assert sorted({(r['method'], r['seed']) for r in trained}) == sorted(
        [(m, s) for m in le.METHODS for s in (0, 1)] + [(m, 0) for m in le.ABLATIONS])
    for r in trained:  # 1 or 3 epochs of 100 images in batches of 20
        assert r['steps'] == 5 * r['budget_epochs'] and r['train_s'] > 0
        assert 0 <= r['knn_top1'] <= 1 and r['vitb_equiv_mae_epochs'] > 0
    assert {(c['method'], c['epochs']) for c in saved['e_vs_3e']} == {
        ('LocalMIM-HOG', 1), ('LocalMIM-pixel', 1)}
    assert len(saved['ablations']) == 4 and set(saved['first_reach']) == set(methods)
    markdown = (tmp_path / 'learning_efficiency.md').read_text()
    assert all(m in markdown for m in methods) and 'Smoke run' in markdown
    # the header states each tap's cell: 4-px patches at scales 4 / 2 / 1 / 0.5, and ViT-B/16's
    assert ('* LocalMIM-HOG: blocks 1 / 3 / 5 / 7: cells 1 / 2 / 4 / 8 px | blocks 1 / 3 / 9 / '
            '11: cells 4 / 8 / 16 / 32 px') in markdown
    assert '`cifar`: 32-px inputs, patch 4 (8 x 8 = 64 tokens)' in markdown
    assert 'python -m tools.benchmarks.learning_efficiency run --quick' in markdown
    # the evaluate subcommand reads a checkpoint of the run on its own
    first = next(r for r in report['results'] if r['method'] == 'MAE' and r['budget_epochs'])
    again = le.main(['evaluate', first['checkpoint'], '--data-root', SAMPLE, '--test-split',
                     'val', '--eval-train-images', '100', '--test-images', '100',
                     '--probe-epochs', '20', '--out-dir', str(tmp_path / 'eval')])
    assert again['results'][0]['knn_top1'] == pytest.approx(first['knn_top1'])
    assert again['results'][0]['linear_top1'] == pytest.approx(first['linear_top1'])


# --------------------------------------------------------------------------- provenance
def test_provenance_header_and_load_warning(monkeypatch, capsys):
    quiet = prov.Provenance.start('x', ['--a', 'b c'], threads=1)
    monkeypatch.setattr(prov.os, 'getloadavg', lambda: (0.1, 0.1, 0.1))
    header = quiet.finish()
    assert header['command'] == "python -m tools.benchmarks.x --a 'b c'"
    assert len(header['git']['commit']) == 40 and header['machine']['torch_threads'] == 1
    assert header['load_after'] == [0.1, 0.1, 0.1]
    cores = header['machine']['usable_cores']
    monkeypatch.setattr(prov.os, 'getloadavg', lambda: (cores + 1., 1., 1.))
    loaded = prov.Provenance.start('x', [], threads=1)
    assert len(loaded.finish()['load_warnings']) == 2  # before and after
    assert 'WARNING: load average' in capsys.readouterr().err
    text = loaded.markdown()
    assert 'WARNING: load average' in text and header['git']['commit'][:12] in text
    with pytest.raises(ValueError, match='--tag'):
        output_stem('out', 'name', 'a/b')


# --------------------------------------------------------------------------- throughput
def test_call_timer_times_calls_through_the_module_attribute(monkeypatch):
    module = types.ModuleType('fake_swin')

    def layout(x):
        return x + 1

    module.build_window_layout = layout
    ticks = iter([10., 10.5, 20., 20.25])
    monkeypatch.setattr(timing.time, 'perf_counter', lambda: next(ticks))
    with timing.CallTimer(module, 'build_window_layout', torch.device('cpu')) as timer:
        assert module.build_window_layout(1) == 2 and module.build_window_layout(2) == 3
    assert timer.calls == 2 and timer.elapsed() == pytest.approx(0.75)
    assert module.build_window_layout is layout and timer.status == 'measured'
    absent = timing.CallTimer(types.ModuleType('rewritten'), 'build_window_layout',
                          torch.device('cpu'))
    with absent:
        pass
    assert absent.status.startswith('not measured: rewritten has no attribute')


def test_throughput_quick(tmp_path):
    tp.main(['--quick', '--cpu', '--steps', '1', '--warmup', '1', '--out-dir', str(tmp_path)])
    saved = json.loads((tmp_path / 'throughput.json').read_text())
    rows = {(g['key'], r['name']): r for g in saved['groups'] for r in g['rows']}
    expected = {('vit', 'LocalMIM ViT-B'), ('vit', 'MAE ViT-B'), ('vit', 'MaskFeat ViT-B'),
                ('vit', 'LoMaR ViT-B'), ('swin', 'LocalMIM Swin-B'),
                ('swin', 'SimMIM Swin-B 192px'), ('swin', 'SimMIM Swin-B'),
                ('vit448', 'LoMaR ViT-B'), ('vit448', 'MAE ViT-B')}
    assert expected == set(rows)
    for key in [('vit', 'MAE ViT-B'), ('vit', 'LocalMIM ViT-B'), ('swin', 'SimMIM Swin-B 192px')]:
        assert rows[key]['step_s_median'] > 0 and rows[key]['peak_mem_mb'] > 0
    assert rows[('vit', 'MAE ViT-B')]['ratio_to_reference'] == pytest.approx(1.0)
    assert 0 < rows[('vit', 'LocalMIM ViT-B')]['target_share_median'] < 1
    swin = rows[('swin', 'LocalMIM Swin-B')]
    if swin['layout_share'] is not None:  # the function may be gone after a rewrite
        assert 0 < swin['layout_share'] < 1 and swin['layout_calls_per_step'] >= 1
    assert 'layout_share' not in rows[('swin', 'SimMIM Swin-B')]
    assert saved['provenance']['quick'] and 'load_after' in saved['provenance']
    markdown = (tmp_path / 'throughput.md').read_text()
    assert all(name in markdown for _, name in expected) and 'layout share' in markdown
    assert 'python -m tools.benchmarks.throughput --quick' in markdown


def test_gpu_acceptance_quick(tmp_path, monkeypatch):
    """CPU smoke run of ``tools.benchmarks.gpu_acceptance``: every tiny recipe steps twice, a
    recipe equal to another in model, batch and input is listed as a duplicate, and the
    throughput table is requested with --batch 64."""
    duplicate = tmp_path / 'configs' / 'copy_of_vit-tiny.py'
    duplicate.parent.mkdir()
    tiny_vit = osp.join(REPO, 'configs', 'localmim',
                        'localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py')
    duplicate.write_text(f'_base_ = [{tiny_vit!r}]\ntrain_cfg = dict(max_epochs=3)\n')
    monkeypatch.setattr(ga, 'RECIPE_GLOBS', ga.RECIPE_GLOBS + (str(duplicate), ))
    throughput_argv = []

    class FakeThroughput:
        @staticmethod
        def main(argv):
            throughput_argv.extend(argv)
            out = argv[argv.index('--out-dir') + 1]
            os.makedirs(out)
            with open(osp.join(out, 'throughput.md'), 'w') as f:
                f.write('| model | images/s |\n| MAE ViT-B | 1.0 |\n')
            return dict(groups=[])

    monkeypatch.setattr(ga, 'throughput', FakeThroughput)
    torch.set_num_threads(1)
    result = ga.main(['--quick', '--out-dir', str(tmp_path / 'out')])

    tiny = sorted(osp.relpath(p, REPO) for folder in ('localmim', 'lomar')
                  for p in glob.glob(osp.join(REPO, 'configs', folder, '*tiny*.py')))
    rows = {r['config']: r for r in result['recipes']}
    assert sorted(rows) == sorted(tiny + [osp.relpath(duplicate, REPO)])
    assert rows[osp.relpath(duplicate, REPO)]['status'].startswith(
        'duplicate of configs/localmim/localmim_vit-tiny')
    for path in tiny:
        row = rows[path]
        if row['status'].startswith('duplicate of '):  # e.g. the own-images tiny recipe
            assert row['status'].split()[2] in tiny
            continue
        assert row['status'] == 'ok', row
        img_size = Config.fromfile(osp.join(REPO, path)).model.backbone.img_size
        assert row['batch'] == row['batch_recipe'] == 32 and row['input_size'] == [img_size] * 2
        assert row['optim_wrapper'] == 'OptimWrapper' and row['finite']
        assert row['images_per_s'] == pytest.approx(32 / row['step_s_median'])
        losses = row['losses']
        assert all(len(values) == 2 for values in losses.values())
        # mmengine's parse_losses: 'loss' is the sum of the other terms, at every iteration
        terms = [k for k in losses if k != 'loss']
        for i in range(2 if terms else 0):  # LoMaR has the one term
            assert losses['loss'][i] == pytest.approx(sum(losses[k][i] for k in terms), rel=1e-5)
    assert result['ok']
    assert throughput_argv[:2] == ['--batch', '64']
    saved = json.loads((tmp_path / 'out' / 'gpu_acceptance.json').read_text())
    assert saved['provenance']['git']['commit'] and len(saved['provenance']['load_before']) == 3
    markdown = (tmp_path / 'out' / 'gpu_acceptance.md').read_text()
    assert 'Command: `python -m tools.benchmarks.gpu_acceptance --quick' in markdown
    assert '| MAE ViT-B | 1.0 |' in markdown
    assert all(osp.basename(p) in markdown for p in tiny)


def test_release_parity_measures_the_hog_bin_rule(tmp_path):
    """``tools.benchmarks.release_parity`` on a few sample images: this project's bins equal
    exact arithmetic everywhere, the release's float32 convolution does not (the difference the
    tool exists to measure), and both outputs are written with their header."""
    result = release_parity.main(['--sizes', '64', '--max-images', '8', '--out-dir', str(tmp_path)])
    study = result['hog_bins'][64]
    for nbins in (9, 18):
        assert study[f'nbins {nbins}: this project (sobel_gradients)'][
            'pixels_in_another_bin_pct'] == 0
    assert study['nbins 18: release float32 convolution']['pixels_in_another_bin_pct'] > 0
    assert all(0 < d < 1e-3 for d in result['swin_eps']['tap_feature_relative_difference'])
    assert (tmp_path / 'release_parity.json').exists()
    assert 'tools.benchmarks.release_parity' in (tmp_path / 'release_parity.md').read_text()
