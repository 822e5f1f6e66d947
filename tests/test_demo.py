"""`make demo` (tools/demo.sh), shortened to 4 epochs: progress while it trains, then the curves
PNG and the learned-vs-mean figure."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
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
