"""Benchmarks: the evaluators against hand-made cases, and smoke runs of both ``--quick`` modes."""
import glob
import importlib.util
import json
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from localmim_mm.evaluation import knn_accuracy, knn_predict, linear_probe_accuracy

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SAMPLE = osp.join(REPO, 'data', 'sample_cifar')


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO, 'tools', 'benchmarks', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    le = _load_tool('learning_efficiency')
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) % 251
    g = torch.Generator().manual_seed(0)
    out = le.random_resized_crop(images.to(torch.uint8), 8, g, scale=(1., 1.), ratio=(1., 1.),
                                 flip=False)
    torch.testing.assert_close(out, images.to(torch.uint8).float(), atol=1e-3, rtol=0)
    out = le.random_resized_crop(images.to(torch.uint8), 16, g, scale=(0.2, 1.))
    assert out.shape == (2, 3, 16, 16) and out.min() >= 0 and out.max() <= 255


@pytest.mark.skipif(not osp.isdir(SAMPLE), reason='data/sample_cifar is not present')
def test_learning_efficiency_quick(tmp_path):
    le = _load_tool('learning_efficiency')
    report = le.main(['run', '--quick', '--data-root', SAMPLE, '--test-split', 'val',
                      '--budget-multiples', '1', '3', '--out-dir', str(tmp_path)])
    for ext in ('json', 'md', 'png'):
        assert (tmp_path / f'learning_efficiency.{ext}').stat().st_size > 0
    saved = json.loads((tmp_path / 'learning_efficiency.json').read_text())
    methods = {r['method'] for r in saved['results'] if r['budget_s'] > 0}
    assert {'LocalMIM-HOG', 'LocalMIM-pixel', 'MAE'} <= methods
    for method in methods:  # one result per budget, each checkpoint trained >= its budget
        rows = [r for r in saved['results'] if r['method'] == method and r['budget_s'] > 0]
        assert len(rows) == 2
        assert all(r['train_s'] >= r['budget_s'] and 0 <= r['knn_top1'] <= 1 for r in rows)
    markdown = (tmp_path / 'learning_efficiency.md').read_text()
    assert all(m in markdown for m in methods)
    # the evaluate subcommand reads a checkpoint of the run on its own
    ckpt = next(r['checkpoint'] for r in report['results'] if r['method'] == 'MAE')
    again = le.main(['evaluate', ckpt, '--data-root', SAMPLE, '--test-split', 'val',
                     '--eval-train-per-class', '30', '--eval-test-per-class', '20',
                     '--probe-epochs', '50', '--out-dir', str(tmp_path / 'eval')])
    first = next(r for r in report['results'] if r['checkpoint'] == ckpt)
    assert again['results'][0]['knn_top1'] == pytest.approx(first['knn_top1'])


def test_throughput_quick(tmp_path):
    tp = _load_tool('throughput')
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
    markdown = (tmp_path / 'throughput.md').read_text()
    assert all(name in markdown for _, name in expected)


def test_gpu_acceptance_quick(tmp_path, monkeypatch):
    """CPU smoke run of tools/benchmarks/gpu_acceptance.py: every tiny recipe steps twice, a
    recipe equal to another in model, batch and input is listed as a duplicate, and the
    throughput table is requested with --batch 64."""
    ga = _load_tool('gpu_acceptance')
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

    monkeypatch.setattr(ga, 'load_throughput', lambda: FakeThroughput)
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
    assert saved['environment']['git_revision'] and len(saved['environment']['load_average']) == 3
    markdown = (tmp_path / 'out' / 'gpu_acceptance.md').read_text()
    assert 'command: `python tools/benchmarks/gpu_acceptance.py --quick' in markdown
    assert '| MAE ViT-B | 1.0 |' in markdown
    assert all(osp.basename(p) in markdown for p in tiny)
