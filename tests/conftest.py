import os
import os.path as osp
import subprocess
import sys

import pytest

from localmim_mm import runtime

# Every run switches the runtime layer on (the recipes' custom_imports, the tools), so the tests,
# which stand in for runs, do too. What `import localmim_mm` alone does is tested in a fresh
# interpreter (tests/test_model_zoo.py::test_import_changes_no_global_behaviour).
runtime.enable()

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED_DATA = osp.join(REPO, '..', 'shared', 'data')
TINY_VIT_CONFIG = osp.join(REPO, 'configs', 'localmim',
                           'localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py')


def run_tool(args, cwd=REPO, timeout=600, env=None):
    """Run a repo tool with this interpreter; fail the test with the log tail on error."""
    full_env = dict(os.environ, PYTHONPATH=REPO, PYTHON=sys.executable, **(env or {}))
    proc = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, args))} exited {proc.returncode}:\n'
                    f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


def train(config, work_dir, *extra, timeout=600):
    return run_tool([sys.executable, osp.join(REPO, 'tools', 'train.py'), config,
                     '--work-dir', str(work_dir), *extra], timeout=timeout)


@pytest.fixture(scope='session')
def tiny_localmim_checkpoint(tmp_path_factory):
    """A real runner checkpoint of the tiny LocalMIM ViT, pre-trained for one epoch."""
    work_dir = tmp_path_factory.mktemp('tiny_localmim')
    train(TINY_VIT_CONFIG, work_dir, '--cfg-options', 'train_cfg.max_epochs=1')
    return osp.join(work_dir, 'epoch_1.pth')


# Under pytest-xdist (tools/run_tests.sh: -n 2 --dist loadgroup) each file's tests stay on one
# worker, and the files that launch several processes (torchrun, gloo) share one worker, so no
# two multi-process runs overlap on a 2-core machine.
MULTIPROCESS_FILES = {'test_chaos_resume.py', 'test_foundation.py', 'test_hook_costs.py',
                      'test_monitor.py', 'test_reliability_distributed.py', 'test_scale_out.py',
                      'test_sharp_edges.py', 'test_stock_tools.py'}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = osp.basename(str(item.fspath))
        group = 'multiprocess' if name in MULTIPROCESS_FILES else name
        item.add_marker(pytest.mark.xdist_group(group))
