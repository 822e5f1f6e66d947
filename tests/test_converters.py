"""Checkpoint tools: publish, extract backbone, authors' release -> localmim_mm.

The release state dicts are built here by hand with the release's key names and shapes (tiny
dims); the expected placement of every tensor is written out independently of the converters'
rule tables (by module attribute, and for PatchMerging by re-implementing both merge orders).
"""
import importlib.util
import os
import os.path as osp
import re

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import HistoryBuffer, MessageHub
from mmpretrain.models import SwinTransformer, VisionTransformer

import localmim_mm  # noqa: F401
from localmim_mm.transfer import load_pretrained, sha256_of

from .release_reference import (release_hog, release_swin_state, release_vit_state,
                                save_like_the_release)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _tool(name):
    path = osp.join(REPO, 'tools', 'model_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


publish_model = _tool('publish_model')
extract_backbone = _tool('extract_backbone')
release_to_mm = _tool('localmim_release_to_mm')

# tiny ViT: 32 px, patch 8 (4x4 grid), width 32, depth 4, 2 heads
VIT = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=128)
# tiny Swin: 64 px, patch 4 (16x16), window 2, width 8, depths 1/1/1/1
SWIN = dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
SWIN_WINDOW = 2


def _vit():
    return VisionTransformer(arch=VIT, img_size=32, patch_size=8, final_norm=False,
                             out_type='avg_featmap')


def _swin():
    return SwinTransformer(arch=SWIN, img_size=64, window_size=SWIN_WINDOW)


def _save_release(tmp_path, state, name='release.pth'):
    path = str(tmp_path / name)
    torch.save({'model': state}, path)
    return path


# ----------------------------------------------------------------------------- release ViT
def test_release_vit_lands_where_timm_names_say(tmp_path):
    src = release_vit_state()
    out = str(tmp_path / 'converted.pth')
    release_to_mm.convert(_save_release(tmp_path, src), out)
    ckpt = torch.load(out, weights_only=True)
    assert ckpt['meta']['converted_from'] == 'release-vit'
    assert sorted(ckpt['meta']['dropped_keys']) == sorted(
        [f'decoder.{k}.pos_embed' for k in range(4)] +
        [f'hog_enc.{k}.conv.weight' for k in range(4)])  # constants, recomputed here
    vit = _vit()
    report = load_pretrained(vit, out, prefix='backbone.', allow_missing=['ln2.*'])
    assert sorted(report.missing_allowed) == ['ln2.bias', 'ln2.weight']
    assert torch.equal(vit.cls_token, src['cls_token'])
    assert torch.equal(vit.pos_embed, src['pos_embed'])
    assert torch.equal(vit.patch_embed.projection.weight, src['patch_embed.proj.weight'])
    for i, layer in enumerate(vit.layers):
        b = f'blocks.{i}.'
        assert torch.equal(layer.ln1.weight, src[b + 'norm1.weight'])
        assert torch.equal(layer.attn.qkv.weight, src[b + 'attn.qkv.weight'])
        assert torch.equal(layer.attn.proj.bias, src[b + 'attn.proj.bias'])
        assert torch.equal(layer.ln2.bias, src[b + 'norm2.bias'])
        assert torch.equal(layer.ffn.layers[0][0].weight, src[b + 'mlp.fc1.weight'])
        assert torch.equal(layer.ffn.layers[1].weight, src[b + 'mlp.fc2.weight'])
    for k in range(4):  # per-tap norms become the neck's
        assert torch.equal(ckpt['state_dict'][f'neck.norms.{k}.weight'], src[f'norm.{k}.weight'])


def test_release_vit_blocks_compute_the_timm_block(tmp_path):
    """One converted block equals a hand-written timm block (pre-norm attention + MLP)."""
    src = release_vit_state()
    out = str(tmp_path / 'converted.pth')
    release_to_mm.convert(_save_release(tmp_path, src), out)
    vit = _vit()
    load_pretrained(vit, out, prefix='backbone.', allow_missing=['ln2.*'])
    x = torch.randn(2, 17, 32)
    b, heads = 'blocks.0.', 2

    def ln(t, name):
        return F.layer_norm(t, (32, ), src[name + '.weight'], src[name + '.bias'], eps=1e-6)

    h = ln(x, b + 'norm1')
    qkv = (h @ src[b + 'attn.qkv.weight'].T + src[b + 'attn.qkv.bias']).view(2, 17, 3, heads, 16)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    att = ((q @ k.transpose(-2, -1)) * 16**-0.5).softmax(-1)
    y = (att @ v).transpose(1, 2).reshape(2, 17, 32)
    x1 = x + y @ src[b + 'attn.proj.weight'].T + src[b + 'attn.proj.bias']
    h = F.gelu(ln(x1, b + 'norm2') @ src[b + 'mlp.fc1.weight'].T + src[b + 'mlp.fc1.bias'])
    expected = x1 + h @ src[b + 'mlp.fc2.weight'].T + src[b + 'mlp.fc2.bias']
    vit.eval()
    torch.testing.assert_close(vit.layers[0](x), expected, rtol=1e-4, atol=1e-4)


def test_release_vit_finetuned_layout(tmp_path):
    """A release fine-tuned ViT (final ``norm``, ``fc_norm``, ``head``) maps too."""
    src = release_vit_state(taps=0, with_decoder=False)
    src.update({'norm.weight': torch.rand(32), 'norm.bias': torch.rand(32),
                'fc_norm.weight': torch.rand(32), 'fc_norm.bias': torch.rand(32),
                'head.weight': torch.rand(10, 32), 'head.bias': torch.rand(10)})
    out = str(tmp_path / 'converted.pth')
    release_to_mm.convert(_save_release(tmp_path, src), out)
    sd = torch.load(out, weights_only=True)['state_dict']
    assert torch.equal(sd['backbone.ln1.weight'], src['norm.weight'])
    assert torch.equal(sd['backbone.ln2.bias'], src['fc_norm.bias'])
    assert torch.equal(sd['head.fc.weight'], src['head.weight'])


# ----------------------------------------------------------------------------- release Swin
def release_merge(x, hw, norm_w, norm_b, red_w):
    """The release's PatchMerging: 2x2 groups concatenated (0,0),(0,1),(1,0),(1,1) (row, col)."""
    b, _, c = x.shape
    h, w = hw
    g = x.view(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5)  # B, h/2, w/2, row, col, C
    g = g.reshape(b, (h // 2) * (w // 2), 4 * c)
    return F.layer_norm(g, (4 * c, ), norm_w, norm_b) @ red_w.T


def original_swin_merge(x, hw, norm_w, norm_b, red_w):
    """Original Swin: x0 = (0,0), x1 = (1,0), x2 = (0,1), x3 = (1,1) (row, col)."""
    b, _, c = x.shape
    h, w = hw
    m = x.view(b, h, w, c)
    g = torch.cat([m[:, 0::2, 0::2], m[:, 1::2, 0::2], m[:, 0::2, 1::2], m[:, 1::2, 1::2]], -1)
    return F.layer_norm(g.reshape(b, -1, 4 * c), (4 * c, ), norm_w, norm_b) @ red_w.T


def test_release_swin_keys_fill_mmpretrain_swin(tmp_path):
    src = release_swin_state()
    out = str(tmp_path / 'converted.pth')
    release_to_mm.convert(_save_release(tmp_path, src), out)
    meta = torch.load(out, weights_only=True)['meta']
    assert meta['converted_from'] == 'release-swin'
    # constants recomputed here: 4 decoder tables, 4 Sobel filters
    assert len(meta['dropped_keys']) == 8
    swin = _swin()
    report = load_pretrained(swin, out, prefix='backbone.', allow_missing=['norm3.*'])
    assert sorted(report.missing_allowed) == ['norm3.bias', 'norm3.weight']
    assert report.missing_buffers == []
    blk = swin.stages[2].blocks[0]
    pre = 'encoder.layers.2.blocks.0.'
    assert torch.equal(blk.attn.w_msa.qkv.weight, src[pre + 'attn.qkv.weight'])
    assert torch.equal(blk.attn.w_msa.relative_position_bias_table,
                       src[pre + 'attn.relative_position_bias_table'])
    assert torch.equal(blk.ffn.layers[1].bias, src[pre + 'mlp.fc2.bias'])
    assert torch.equal(swin.patch_embed.norm.weight, src['encoder.patch_embed.norm.weight'])


@pytest.mark.parametrize('stage', [0, 1, 2])
def test_release_swin_patch_merging_is_numerically_preserved(tmp_path, stage):
    src = release_swin_state()
    out = str(tmp_path / 'converted.pth')
    release_to_mm.convert(_save_release(tmp_path, src), out)
    swin = _swin()
    load_pretrained(swin, out, prefix='backbone.', allow_missing=['norm3.*'])
    c, side = 8 * 2**stage, 16 // 2**stage
    x = torch.randn(2, side * side, c)
    d = f'encoder.layers.{stage}.downsample.'
    weights = (src[d + 'norm.weight'], src[d + 'norm.bias'], src[d + 'reduction.weight'])
    expected = release_merge(x, (side, side), *weights)
    got, out_hw = swin.stages[stage].downsample(x, (side, side))
    assert out_hw == (side // 2, side // 2)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # the check discriminates: the original Swin order differs from the release's
    assert not torch.allclose(original_swin_merge(x, (side, side), *weights), expected, atol=1e-3)


def test_release_converter_refuses_unknown_layouts(tmp_path):
    out = str(tmp_path / 'out.pth')
    with pytest.raises(ValueError, match='not an authors\' release'):
        release_to_mm.convert(_save_release(tmp_path, {'foo.weight': torch.ones(2)}), out)
    assert not osp.exists(out)
    vit = release_vit_state()
    vit['blocks.0.attn.q_bias'] = torch.ones(32)  # a key no rule knows: no partial file
    with pytest.raises(ValueError, match='match no rule'):
        release_to_mm.convert(_save_release(tmp_path, vit), out)
    ours = {'backbone.cls_token': torch.ones(1, 1, 32)}
    with pytest.raises(ValueError, match='already has this project'):
        release_to_mm.convert(_save_release(tmp_path, ours), out)
    assert not osp.exists(out)
    assert os.listdir(tmp_path) == ['release.pth']  # no temporary left behind


# ----------------------------------------------------------------------------- whole checkpoints
TINY_VIT = 'configs/localmim/localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py'
TINY_SWIN = 'configs/localmim/localmim_swin-tiny_1xb32-coslr-20e_sample.py'
WHOLE = {
    # the tiny ViT recipe as ViT-L is set up: HOG with 18 bins and the per-scale bias
    'vit-hog18-bias': (TINY_VIT, dict(head=dict(target_channels=54),
                                      target_generator=dict(nbins=18, hog_bias=True)),
                       lambda: release_vit_state(depth=8, dim=192, patch=8, grid=8,
                                                 decoder_dim=128, nbins=18, hog_bias=True)),
    'swin-hog': (TINY_SWIN, {},
                 lambda: release_swin_state(dim=32, depths=(2, 2, 2, 2), heads=(1, 2, 4, 8),
                                            window=4, grid=4, decoder_dim=64, nbins=18)),
}


def build_pretraining_model(config, overrides):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.merge_from_dict({f'model.{k}': v for k, v in overrides.items()})
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('name', sorted(WHOLE))
def test_release_checkpoint_converts_whole_and_continues_pretraining(tmp_path, name, capsys):
    """A file written like the release's save_model (args: an argparse.Namespace) converts
    without --trust-pickle, every tensor lands (a strict load into the pre-training model, as
    load_from does), and the converted model's HOG targets are the release's with the file's
    per-scale biases."""
    from mmengine.runner.checkpoint import load_checkpoint
    config, overrides, make_state = WHOLE[name]
    src = make_state()
    path = save_like_the_release(str(tmp_path / 'checkpoint-99.pth'), src)
    out = str(tmp_path / 'converted.pth')
    release_to_mm.convert(path, out)
    printed = capsys.readouterr().out
    assert 'dropped, recomputed here and checked equal: ' in printed
    assert 'decoder.*.pos_embed (4)' in printed and 'hog_enc.*.conv.weight (4)' in printed

    model = build_pretraining_model(config, overrides)
    load_checkpoint(model, out, map_location='cpu', strict=True)  # what load_from calls
    biases = torch.stack([src[f'hog_enc.{k}.conv.bias'] for k in range(4)])
    assert torch.equal(model.target_generator.hog_bias, biases)
    decoder = model.head.decoders[0]
    assert torch.equal(decoder.embed.weight, src['decoder.0.embed.weight'])
    assert torch.equal(decoder.blocks[0].ffn.layers[0][0].weight,
                       src['decoder.0.blocks.0.mlp.fc1.weight'])
    pred = [k for k in src if k.startswith('decoder.0.pred') and k.endswith('weight')][-1]
    last = decoder.pred if isinstance(decoder.pred, torch.nn.Linear) else decoder.pred[-1]
    assert torch.equal(last.weight, src[pred])

    img = torch.randn(2, 3, 64, 64) if 'vit' in name else torch.randn(2, 3, 128, 128)
    cells = model.target_generator.cell_sizes
    expected = release_hog(img, 18, cells, biases)
    for got, want in zip(model.target_generator(img), expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    losses = model.loss(img, None)
    assert all(torch.isfinite(v) for v in losses.values())


def test_release_file_with_other_pickled_objects_still_needs_trust(tmp_path):
    import datetime
    path = str(tmp_path / 'odd.pth')
    torch.save({'model': release_vit_state(), 'extra': datetime.date(2023, 3, 9)}, path)
    with pytest.raises(ValueError, match='trust-pickle'):
        release_to_mm.convert(path, str(tmp_path / 'out.pth'))


# ----------------------------------------------------------------------------- publish / extract
@pytest.fixture
def runner_checkpoint(tmp_path):
    """A checkpoint with mmengine's runner layout (meta with cfg, optimizer, message hub with a
    HistoryBuffer, schedulers), as CheckpointHook writes it in a run (runtime layer on)."""
    from localmim_mm import runtime
    runtime.enable()
    model = torch.nn.ModuleDict({'backbone': _vit(), 'neck': torch.nn.LayerNorm(32)})
    opt = torch.optim.AdamW(model.parameters())
    hub = MessageHub('publish_test')
    hub.update_scalar('train/loss', 1.5)
    assert isinstance(hub.log_scalars['train/loss'], HistoryBuffer)
    ckpt = dict(meta=dict(cfg='model = dict(type="LocalMIM")\n', epoch=3, iter=30, seed=0),
                state_dict=model.state_dict(), optimizer=opt.state_dict(),
                message_hub=hub.state_dict(), param_schedulers=[dict(last_epoch=3)])
    path = str(tmp_path / 'epoch_3.pth')
    torch.save(ckpt, path)
    return path, model.state_dict()


def test_publish_makes_a_pure_tensor_zoo_file(tmp_path, runner_checkpoint):
    path, state = runner_checkpoint
    final = publish_model.publish(path, str(tmp_path / 'zoo' / 'localmim_vit-tiny.pth'))
    name = osp.basename(final)
    match = re.fullmatch(r'localmim_vit-tiny_(\d{8})-([0-9a-f]{8})\.pth', name)
    assert match, name
    assert match.group(2) == sha256_of(final)[:8]
    assert sorted(os.listdir(tmp_path / 'zoo')) == sorted([name, 'localmim_vit-tiny.pth'])
    ckpt = torch.load(final, weights_only=True)
    assert sorted(ckpt) == ['meta', 'state_dict']
    assert sorted(ckpt['state_dict']) == sorted(state)
    for k, v in state.items():
        assert torch.equal(ckpt['state_dict'][k], v)
    meta = ckpt['meta']
    assert meta['config'].startswith('model = dict(type="LocalMIM")')
    assert meta['epoch'] == 3 and meta['iter'] == 30
    assert meta['versions']['torch'] == torch.__version__
    assert {'mmengine', 'mmpretrain', 'localmim_mm'} <= set(meta['versions'])


def test_publish_prints_the_file_keeps_a_stable_name_and_is_readable(tmp_path, runner_checkpoint):
    """From the command line: the last line is the published file, the path the user typed
    links to it (a config naming that path keeps working after a re-publish), and the file is
    readable by all under the usual umask 022."""
    import subprocess
    import sys
    path, state = runner_checkpoint
    stable = tmp_path / 'zoo' / 'localmim_vit-tiny.pth'
    tool = osp.join(REPO, 'tools', 'model_converters', 'publish_model.py')
    env = dict(os.environ, PYTHONPATH=REPO)
    runs = [subprocess.run(f'umask 022 && {sys.executable} {tool} {path} {stable}', shell=True,
                           cwd=REPO, env=env, capture_output=True, text=True, check=True)
            for _ in range(2)]  # the second publish moves the link (same content, same name)
    final = runs[-1].stdout.strip().splitlines()[-1]
    assert osp.isfile(final) and re.fullmatch(r'.*_\d{8}-[0-9a-f]{8}\.pth', final)
    assert osp.islink(stable) and osp.realpath(stable) == osp.realpath(final)
    assert os.readlink(stable) == osp.basename(final)  # relative: the folder can move
    assert oct(os.stat(final).st_mode & 0o777) == oct(0o644)
    loaded = load_pretrained(_vit(), str(stable), prefix='backbone.', allow_missing=['ln2.*'])
    assert loaded is not None
    (tmp_path / 'zoo' / 'mine.pth').write_bytes(b'not ours')
    with pytest.raises(FileExistsError, match='is not a link made by publish_model.py'):
        publish_model.publish(path, str(tmp_path / 'zoo' / 'mine.pth'))
    assert (tmp_path / 'zoo' / 'mine.pth').read_bytes() == b'not ours'


def test_publish_refuses_non_runner_files(tmp_path):
    src = _save_release(tmp_path, release_vit_state())
    with pytest.raises(ValueError, match='not an mmengine runner checkpoint'):
        publish_model.publish(src, str(tmp_path / 'out.pth'))
    assert sorted(os.listdir(tmp_path)) == ['release.pth']


@pytest.mark.parametrize('keep_prefix', [False, True])
def test_extract_backbone(tmp_path, runner_checkpoint, keep_prefix):
    path, state = runner_checkpoint
    out = str(tmp_path / 'backbone.pth')
    extract_backbone.extract(path, out, keep_prefix=keep_prefix)
    ckpt = torch.load(out, weights_only=True)
    expected = {k: v for k, v in state.items() if k.startswith('backbone.')}
    if not keep_prefix:
        expected = {k[len('backbone.'):]: v for k, v in expected.items()}
    assert sorted(ckpt['state_dict']) == sorted(expected)
    assert ckpt['meta']['key_layout'] == ('backbone-prefixed' if keep_prefix else
                                          'backbone-relative')
    vit = _vit()  # the backbone-relative file loads with no prefix
    load_pretrained(vit, out, prefix='backbone.' if keep_prefix else None,
                    allow_missing=['ln2.*'])
    assert torch.equal(vit.layers[3].attn.qkv.weight, state['backbone.layers.3.attn.qkv.weight'])


def test_extract_refuses_files_without_backbone(tmp_path):
    src = str(tmp_path / 'neck_only.pth')
    torch.save({'state_dict': {'neck.norms.0.weight': torch.ones(4)}}, src)
    out = str(tmp_path / 'out.pth')
    with pytest.raises(ValueError, match="starts with prefix 'backbone.'"):
        extract_backbone.extract(src, out)
    assert not osp.exists(out)


def test_extract_takes_the_encoder_of_a_release_file(tmp_path):
    """A release file is read in this project's layout, so its encoder is extracted: the
    timm-named block weights land under mmpretrain's names (written out here by hand)."""
    state = release_vit_state()
    src = _save_release(tmp_path, state)
    out = str(tmp_path / 'out.pth')
    extract_backbone.extract(src, out)
    got = torch.load(out, weights_only=True)['state_dict']
    assert torch.equal(got['layers.2.ffn.layers.0.0.weight'], state['blocks.2.mlp.fc1.weight'])
    assert torch.equal(got['patch_embed.projection.bias'], state['patch_embed.proj.bias'])
    assert not any(k.startswith(('decoder', 'neck', 'head')) for k in got)
