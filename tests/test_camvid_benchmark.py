"""Smoke test of ``tools.benchmarks.camvid_transfer`` in --quick mode (real CamVid, CPU)."""
import json
import os.path as osp
import sys

import pytest

from .conftest import SHARED_DATA, run_tool


def test_quick_mode_runs_every_arm(tmp_path):
    archive = osp.join(SHARED_DATA, 'camvid.tar.gz')
    if not osp.isfile(archive):
        pytest.skip(f'{archive} is absent (the shared CamVid copy; not in a fresh clone)')
    out, work = tmp_path / 'results', tmp_path / 'camvid'
    run_tool([sys.executable, '-m', 'tools.benchmarks.camvid_transfer', '--quick',
              '--out-dir', str(out), '--work-dir', str(work), '--camvid', archive,
              '--tag', 'smoke'], timeout=1500)
    results = json.loads((out / 'camvid_transfer_smoke.json').read_text())
    assert results['quick'] and set(results['runs']) == {'random', 'mae', 'localmim'}
    assert results['provenance']['quick'] and 'load_after' in results['provenance']
    for name, run in results['runs'].items():
        assert 0 <= run['mIoU'] <= 100, name
        assert ('pretraining' in run) == (name != 'random')
    for name in ('mae', 'localmim'):
        assert results['runs'][name]['pretraining']['iters'] >= 1
        log = (work / f'finetune_{name}' / 'finetune.log').read_text()
        assert 'LoudPretrained: loaded 100 of 132 tensors of BEiTViT' in log, name
    assert 'LoudPretrained' not in (work / 'finetune_random' / 'finetune.log').read_text()
    markdown = (out / 'camvid_transfer_smoke.md').read_text()
    assert 'tools.benchmarks.camvid_transfer --quick' in markdown and 'Load average' in markdown
