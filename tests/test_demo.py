"""`make demo` (tools/demo.sh), shortened to 4 epochs: progress while it trains, then the curves
PNG and the learned-vs-mean figure."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from .conftest import REPO


def test_demo_shows_progress_and_ends_with_curves_and_learned_vs_mean(tmp_path):
    work_dir = tmp_path / 'demo'
    env = dict(os.environ, PYTHONPATH=REPO, PYTHON=sys.executable, EPOCHS='4',
               WORK_DIR=str(work_dir), OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', 'demo.sh')], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    # Progress while training: epoch lines with loss and ETA, the monitor, the drawings.
    assert re.search(r'\[demo\] epoch 1 of 4   loss [0-9.]+   eta \d+:\d\d:\d\d', out)
    assert re.search(r'\[demo\] epoch 4 of 4   loss [0-9.]+   eta 0:00:00', out)
    assert len(re.findall(r'k-NN top-1 [0-9.]+ % \((initial|epoch 4)', out)) == 2
    assert '[demo]     reconstructions drawn (epoch 4)' in out
    # The end: learned vs mean per layer and in all, the curves PNG, the reconstructions.
    ratios = re.findall(r'(block\d|all) +model [0-9.]+ +mean target [0-9.]+ +model / mean = '
                        r'([0-9.]+)', out)
    assert [name for name, _ in ratios] == ['block1', 'block3', 'block5', 'block7', 'all']
    summary = json.loads((work_dir / 'summary.json').read_text())
    assert float(ratios[-1][1]) == round(summary['learned_vs_mean']['all']['ratio'], 3)
    assert [k['iteration'] for k in summary['knn_top1']] == [0, 40]
    with Image.open(work_dir / 'curves.png') as img:
        assert img.size[0] > 1000 and np.asarray(img.convert('L')).std() > 20
    assert out.count('reconstruction_airplane_0000_') == 2  # initial and epoch 4


def test_learned_vs_mean_against_a_hand_computation():
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from localmim_mm.analysis.learned_vs_mean import learned_vs_mean
    from .conftest import TINY_VIT_CONFIG
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(TINY_VIT_CONFIG).model).eval()
    x = torch.randn(6, 3, 64, 64)
    got = learned_vs_mean(model, x, seed=4)
    # block5 (scale 1, 8-px cells): the loss cells are the masked patches, weight 1 each.
    torch.manual_seed(4)
    _, mask, _ = model.backbone(x, mask=True)
    target = model.target_generator(x)[2]  # (B, 64 cells, 27)
    mean = target.mean(dim=(0, 1))
    per_cell = (target - mean).pow(2).mean(-1)
    masked = mask.flatten(1).bool()
    assert got['block5'].mean == pytest.approx(per_cell[masked].mean().item(), rel=1e-5)
    # A head that predicts the mean target everywhere has learned nothing: ratio 1.
    original = model.head.forward
    model.head.forward = lambda feats, mask: [
        t.mean(dim=(0, 1)).view(1, -1, 1, 1).expand_as(p)
        for t, p in zip(model.target_generator(x), original(feats, mask))]
    assert all(r.ratio == pytest.approx(1.0) for r in learned_vs_mean(model, x, 4).values())
