"""The model zoo through mmpretrain's model API, and checkpoints by URL (no internet: a local
HTTP server on 127.0.0.1 serves release-format files written here with the release's key names).

Expected tensor placements are written out by hand from the release's names (timm / GreenMIM
layouts), not taken from the converter's rule tables.
"""
import http.server
import os
import os.path as osp
import subprocess
import sys
import threading

import mmpretrain
import pytest
import torch
import yaml

import localmim_mm  # noqa: F401
from localmim_mm import zoo

from .release_reference import release_swin_state, release_vit_state, save_like_the_release

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_VIT = 'localmim_vit-tiny-p8_1xb32-coslr-20e_sample'
TINY_SWIN = 'localmim_swin-tiny_1xb32-coslr-20e_sample'
# The tiny ViT recipe as the release's ViT-L is set up (HOG 18 bins, per-scale bias), and the
# release state dicts of the tiny recipes' shapes.
VIT_OVERRIDES = dict(head=dict(target_channels=54), target_generator=dict(nbins=18, hog_bias=True))


def vit_release():
    return release_vit_state(depth=8, dim=192, patch=8, grid=8, decoder_dim=128, nbins=18,
                             hog_bias=True)


def swin_release():
    return release_swin_state(dim=32, depths=(2, 2, 2, 2), heads=(1, 2, 4, 8), window=4, grid=4,
                              decoder_dim=64, nbins=18)


def metafile_entries():
    names = []
    for folder in ('localmim', 'lomar'):
        with open(osp.join(REPO, 'configs', folder, 'metafile.yml')) as f:
            names += [m['Name'] for m in yaml.safe_load(f)['Models']]
    return names


# ----------------------------------------------------------------------------- the index
def test_every_metafile_entry_is_listed():
    listed = set(mmpretrain.list_models('*localmim*')) | set(mmpretrain.list_models('*lomar*'))
    entries = metafile_entries()
    assert len(entries) == len(set(entries)) > 40
    assert set(entries) == listed


def test_release_entries_carry_the_release_urls_and_paper_results():
    with open(osp.join(REPO, 'configs', 'localmim', 'metafile.yml')) as f:
        models = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    expected = {  # the release README's table
        'localmim_vit-base-p16_release-1600e_in1k': ('vit_base_localmim_hog_1600ep', 84.0),
        'localmim_vit-large-p16_release-800e_in1k': ('vit_large_localmim_hog_800ep', 85.8),
        'localmim_swin-base-w7-pixel_release-400e_in1k': ('swin_base_localmim_pixel_400ep', 84.0),
        'localmim_swin-base-w7_release-400e_in1k': ('swin_base_localmim_hog_400ep', 84.1),
        'localmim_swin-large-w14_release-800e_in1k': ('swin_large_localmim_hog_800ep', 85.6),
    }
    for name, (stem, top1) in expected.items():
        url = ('https://github.com/Haoqing-Wang/LocalMIM/releases/download/pretrain/'
               f'{stem}_pretrain.pth')
        entry = models[name]
        assert entry['Weights'] == url == entry['Converted From']['Weights']
        assert entry['Paper Results'][0]['Metrics']['Top 1 Accuracy'] == top1
        assert mmpretrain.ModelHub.get(name).weights == url
    assert sorted(zoo.released_entries()) == sorted(expected)


def test_import_twice_and_reload_register_once():
    code = ('import importlib, localmim_mm, localmim_mm.zoo, mmpretrain\n'
            'importlib.reload(localmim_mm.zoo); importlib.reload(localmim_mm)\n'
            'localmim_mm.zoo.register_model_index()\n'
            'print(len(mmpretrain.list_models("*localmim*")))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd='/',
                         env=dict(os.environ, PYTHONPATH=REPO), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) == len(mmpretrain.list_models('*localmim*'))


def test_import_changes_no_global_behaviour():
    """In a fresh interpreter: every checkpoint scheme mmengine had keeps its loader (one new,
    narrower prefix is added: the release URLs), copyreg's table and torch's safe globals are
    unchanged by `import localmim_mm`."""
    code = '''
import copyreg, torch
from mmengine.runner.checkpoint import CheckpointLoader
import mmpretrain, mmengine.logging
schemes = dict(CheckpointLoader._schemes)
dispatch = dict(copyreg.dispatch_table)
safe = list(torch.serialization.get_safe_globals())
import localmim_mm
after = dict(CheckpointLoader._schemes)
assert all(after[p] is loader for p, loader in schemes.items()), 'a loader was replaced'
assert sorted(set(after) - set(schemes)) == [
    'https://github.com/Haoqing-Wang/LocalMIM/releases/download/'], sorted(after)
assert all(copyreg.dispatch_table[k] is v for k, v in dispatch.items()), 'copyreg changed'
# Entries that libraries imported along the way register for their own types (scipy's uarray)
# are theirs; none may be for a type of mmengine, torch or numpy.
new = [k for k in copyreg.dispatch_table if k not in dispatch]
assert not [k for k in new if k.__module__.split('.')[0] in ('mmengine', 'torch', 'numpy')], new
# torch adds its own DTensor types when torch.distributed.tensor is first imported; nothing
# else may appear (no HistoryBuffer, numpy type or argparse.Namespace).
added = [g for g in torch.serialization.get_safe_globals() if g not in safe]
assert all(getattr(g, '__module__', '').startswith('torch.') for g in added), added
import localmim_mm.runtime.enabled  # what the recipes' runtime does: now the layer is on
assert CheckpointLoader._schemes[''] is not schemes['']
from mmengine.logging import HistoryBuffer
assert HistoryBuffer in copyreg.dispatch_table
print('ok')
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=REPO), timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith('ok'), out.stderr[-3000:]


# ----------------------------------------------------------------------------- building
def buildable_entries():
    """Entries get_model builds (pre-training and classification), one per config."""
    seen, names = set(), []
    for name in metafile_entries():
        if name.startswith(('mask-rcnn', 'upernet')):
            continue
        config = mmpretrain.ModelHub._models_dict[name].config
        if config not in seen:
            seen.add(config)
            names.append(name)
    return names


@pytest.mark.parametrize('name', buildable_entries())
def test_every_entry_builds_at_its_real_size_and_runs_a_forward(name):
    model = zoo.get_model(name)
    size = model._config.model.backbone.get('img_size', 224)
    images = torch.rand(1, 3, size, size)
    with torch.no_grad():
        if 'test_dataloader' in mmpretrain.ModelHub.get(name).config:  # a classifier
            out = model(images)
            classes = model._config.model.head.num_classes
            assert out.shape == (1, classes)
        else:
            out = model.extract_feat(images)
            assert all(torch.isfinite(o).all() for o in out)
    del model


def test_detection_and_segmentation_entries_say_which_tool_builds_them():
    for name in ('mask-rcnn_vit-base-p16-vitdet_localmim-pre_sfp_8xb8-amp-lsj-100e_coco',
                 'upernet_vit-base-p16_localmim-pre_8xb2-160k_ade20k-512x512'):
        assert name in mmpretrain.list_models('*localmim*')
        with pytest.raises(ValueError, match=r"tools/train.py .*its config is .*\.py"):
            zoo.get_model(name)


def test_bad_names_and_missing_weights():
    with pytest.raises(ValueError, match=f'did you mean {TINY_VIT}'):
        zoo.get_model(TINY_VIT.replace('tiny', 'tyni'))
    with pytest.raises(ValueError, match='no released weights.*pretrained=PATH_OR_URL.*'
                       'localmim_vit-base-p16_release-1600e_in1k'):
        zoo.get_model(TINY_VIT, pretrained=True)


def test_feature_extractor_reads_images_with_a_pretraining_entry(tmp_path):
    """FeatureExtractor on the zoo model: the inference pipeline resizes any image to the
    model's input and returns the tapped blocks' tokens (cls + 8x8 patches, width 192)."""
    import numpy as np
    model = zoo.get_model(TINY_VIT)
    images = [np.random.randint(0, 255, (100, 90, 3), dtype=np.uint8),
              np.random.randint(0, 255, (40, 70, 3), dtype=np.uint8)]
    feats = mmpretrain.FeatureExtractor(model)(images, batch_size=2)
    assert len(feats) == 2
    assert [tuple(t.shape) for t in feats[0]] == [(65, 192)] * 4


# ----------------------------------------------------------------------------- URLs
class _Server:
    """Serves bytes by path; counts requests. Modes: whole, 'cut' (announces the whole length,
    sends half, closes), 'html' (a web page)."""

    def __init__(self):
        self.files, self.requests = {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                data, mode = server.files.get(self.path, (None, None))
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2] if mode == 'cut' else data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, name, data, mode='whole'):
        self.files[f'/{name}'] = (data, mode)
        return f'http://127.0.0.1:{self.httpd.server_port}/{name}'


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.httpd.shutdown()


@pytest.fixture
def hub_dir(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    yield tmp_path / 'hub'
    torch.hub.set_dir(old)


@pytest.fixture
def mm_log():
    """What mmengine's current logger writes (print_log(logger='current')) during the test."""
    import io
    import logging
    from mmengine.logging import MMLogger
    # A logger of its own, made the current one at INFO: an earlier test of the same worker may
    # have left a current logger at another level.
    stream = io.StringIO()
    logger = MMLogger.get_instance(f'test_model_zoo_{id(stream)}', log_level='INFO')
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def serve_release(server, tmp_path, state, name):
    path = save_like_the_release(str(tmp_path / name), state)
    with open(path, 'rb') as f:
        return server.add(name, f.read())


def assert_vit_release_loaded(model, src):
    b = model.backbone
    assert torch.equal(b.layers[5].attn.qkv.weight, src['blocks.5.attn.qkv.weight'])
    assert torch.equal(b.layers[7].ffn.layers[1].bias, src['blocks.7.mlp.fc2.bias'])
    assert torch.equal(b.patch_embed.projection.weight, src['patch_embed.proj.weight'])
    assert torch.equal(b.pos_embed, src['pos_embed'])


def test_get_model_loads_a_release_url_whole_and_caches_it(server, hub_dir, tmp_path, mm_log):
    src = vit_release()
    url = serve_release(server, tmp_path, src, 'vit_release.pth')
    model = zoo.get_model(TINY_VIT, pretrained=url, **VIT_OVERRIDES)
    assert_vit_release_loaded(model, src)
    assert torch.equal(model.neck.norms[3].weight, src['norm.3.weight'])
    assert torch.equal(model.head.decoders[2].embed.weight, src['decoder.2.embed.weight'])
    biases = torch.stack([src[f'hog_enc.{k}.conv.bias'] for k in range(4)])
    assert torch.equal(model.target_generator.hog_bias, biases)
    assert osp.isfile(hub_dir / 'checkpoints' / 'vit_release.pth')
    log = mm_log.getvalue()
    assert "authors' release checkpoint (vit layout) converted" in log
    total = len(model.state_dict())
    assert f'loaded {total} of {total} tensors' in log
    again = zoo.get_model(TINY_VIT, pretrained=url, **VIT_OVERRIDES)
    assert server.requests == ['/vit_release.pth']  # the second load came from the cache
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name  # the same file converts to the same tensors


def test_stock_mmpretrain_get_model_loads_a_release_file(hub_dir, tmp_path):
    """mmpretrain's own get_model (mmengine's load_checkpoint) on a local release file: the
    recipe's runtime switched the runtime layer on, which reads and converts it."""
    src = swin_release()
    path = save_like_the_release(str(tmp_path / 'swin_release.pth'), src)
    model = mmpretrain.get_model(TINY_SWIN, pretrained=path)
    stage = model.backbone.stages[1].blocks[0]
    assert torch.equal(stage.attn.w_msa.qkv.weight,
                       src['encoder.layers.1.blocks.0.attn.qkv.weight'])
    assert torch.equal(model.neck.norms[0].bias, src['encoder.norm.0.bias'])


@pytest.mark.parametrize('init', ['LoudPretrained', 'Pretrained'])
def test_downstream_init_cfg_takes_a_release_url(server, hub_dir, tmp_path, init):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    src = vit_release()
    url = serve_release(server, tmp_path, src, 'vit_release.pth')
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, 'configs/benchmarks/classification/'
                                         'vit-tiny-p8_1xb32-coslr-20e_sample.py'))
    init_cfg = dict(type=init, checkpoint=url, prefix='backbone.')
    if init == 'LoudPretrained':
        init_cfg['allow_missing'] = cfg.model.backbone.init_cfg.get('allow_missing', [])
    cfg.model.backbone.init_cfg = init_cfg
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert_vit_release_loaded(model, src)


def test_load_from_a_release_url_continues_pretraining(server, hub_dir, tmp_path):
    """What load_from runs: Runner.load_checkpoint (mmengine's CheckpointLoader) on the URL."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    src = vit_release()
    url = serve_release(server, tmp_path, src, 'vit_release.pth')
    cfg = Config.fromfile(osp.join(REPO, 'configs/localmim',
                                   f'{TINY_VIT}.py'))
    cfg.merge_from_dict({f'model.{k}': v for k, v in VIT_OVERRIDES.items()})
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_dataloader.dataset.data_root = osp.join(REPO, 'data/sample_cifar')
    runner = Runner.from_cfg(cfg)
    runner.load_checkpoint(url)
    assert_vit_release_loaded(runner.model, src)
    assert torch.equal(runner.model.head.decoders[0].embed.weight, src['decoder.0.embed.weight'])


# ----------------------------------------------------------------------------- bad URLs
def test_unreachable_url_says_offline_and_how_to_pass_a_file(hub_dir):
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(ConnectionError, match='offline.*local path'):
        zoo.get_model(TINY_VIT, pretrained=f'http://127.0.0.1:{port}/x.pth')
    assert not os.listdir(hub_dir / 'checkpoints')


@pytest.mark.parametrize('mode', ['cut', 'html'])
def test_cut_short_or_html_downloads_are_not_kept(server, hub_dir, tmp_path, mode):
    if mode == 'cut':
        path = save_like_the_release(str(tmp_path / 'r.pth'), vit_release())
        with open(path, 'rb') as f:
            url = server.add('r.pth', f.read(), 'cut')
        match = 'cut short'
    else:
        url = server.add('r.pth', b'<!DOCTYPE html><html><body>release page</body></html>')
        match = 'web page'
    with pytest.raises(ValueError, match=match):
        zoo.get_model(TINY_VIT, pretrained=url, **VIT_OVERRIDES)
    assert not osp.exists(hub_dir / 'checkpoints' / 'r.pth')


def test_release_file_of_another_architecture_lists_the_mismatches(server, hub_dir, tmp_path):
    url = serve_release(server, tmp_path, swin_release(), 'swin_release.pth')
    with pytest.raises(ValueError, match='LoudPretrained') as err:
        zoo.get_model(TINY_VIT, pretrained=url, **VIT_OVERRIDES)
    said = str(err.value)
    assert 'Likely cause: another architecture' in said and 'Nothing was loaded' in said
    assert 'missing: backbone.cls_token' in said and len(said.splitlines()) <= 4


# ----------------------------------------------------------------------------- installed wheel
def test_wheel_ships_configs_and_trains_with_mmpretrains_stock_tool(tmp_path):
    """A wheel built from the checkout, installed with --target, used from outside the checkout:
    lists and builds the tiny recipe, and mmpretrain's own tools/train.py trains it one
    iteration on the config shipped inside the wheel."""
    wheels, target, cwd = tmp_path / 'wheels', tmp_path / 'site', tmp_path / 'elsewhere'
    cwd.mkdir()
    build = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                            '--no-build-isolation', '-q', '-w', str(wheels), REPO],
                           capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(wheels.glob('localmim_mm-*.whl'))
    install = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q',
                              '--target', str(target), str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    shipped = target / 'localmim_mm' / '.mim'
    assert (shipped / 'model-index.yml').is_file() and (shipped / 'tools' / 'train.py').is_file()

    env = dict(os.environ, PYTHONPATH=str(target))
    code = ('import localmim_mm, mmpretrain, sys\n'
            f'assert localmim_mm.__file__.startswith({str(target)!r}), localmim_mm.__file__\n'
            f'assert {TINY_VIT!r} in mmpretrain.list_models("*localmim*")\n'
            f'print(type(mmpretrain.get_model({TINY_VIT!r})).__name__)\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=str(cwd), env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith('LocalMIM'), out.stderr[-2000:]

    import mmpretrain as mp
    stock_train = osp.join(osp.dirname(mp.__file__), '.mim', 'tools', 'train.py')
    config = shipped / 'configs' / 'localmim' / f'{TINY_VIT}.py'
    run = subprocess.run(
        [sys.executable, stock_train, str(config), '--work-dir', str(tmp_path / 'work'),
         '--cfg-options', 'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=32',
         f'train_dataloader.dataset.data_root={osp.join(REPO, "data", "sample_cifar")}',
         'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False'],
        cwd=str(cwd), env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')


def test_the_vit_b_release_entry_takes_a_release_file_of_vit_b_shapes_whole(tmp_path):
    """At the real size: a ViT-B/16 file with the release's names and shapes (12 blocks of 768,
    14x14 grid, 256-wide decoders, HOG 9 bins) loads whole into the release entry's model
    (load_pretrained raises on any missing parameter or other shape)."""
    src = release_vit_state(depth=12, dim=768, patch=16, grid=14, decoder_dim=256, nbins=9)
    path = save_like_the_release(str(tmp_path / 'vit_base_release.pth'), src)
    del src
    model = zoo.get_model('localmim_vit-base-p16_release-1600e_in1k', pretrained=path)
    assert model.backbone.layers[11].attn.qkv.weight.shape == (3 * 768, 768)


def test_readme_model_zoo_table_lists_every_entry():
    with open(osp.join(REPO, 'README.md')) as f:
        readme = f.read()
    section = readme[readme.index('## Model zoo'):readme.index('## Analysis')]
    rows = {line.split('`')[1] for line in section.splitlines() if line.startswith('| `')}
    assert rows == set(metafile_entries())


def test_image_classification_inferencer_on_a_fine_tuning_entry():
    import numpy as np
    model = zoo.get_model('vit-tiny-p8_localmim-pre_1xb32-coslr-20e_sample')
    result = mmpretrain.ImageClassificationInferencer(model)(
        np.random.randint(0, 255, (50, 60, 3), dtype=np.uint8))[0]
    scores = result['pred_scores']
    assert len(scores) == model._config.model.head.num_classes
    assert abs(float(scores.sum()) - 1) < 1e-4 and result['pred_label'] == int(scores.argmax())
