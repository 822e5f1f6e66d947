"""The ``caltech128`` protocol of ``tools.benchmarks.learning_efficiency`` (ViT-B/16's target
geometry): its construction on a handful of images, checked against values computed by hand.
Nothing here trains the protocol."""
import io
import os.path as osp
import tarfile

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from PIL import Image

from tools.benchmarks import learning_efficiency
from tools.benchmarks.core.methods import method_config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CALTECH = osp.join(REPO, '..', 'shared', 'data', 'caltech101_dev_128.tar.gz')


@pytest.fixture(scope='module')
def le():
    init_default_scope('mmpretrain')
    MMLogger.get_current_instance().setLevel('ERROR')  # init_weights logs every parameter
    return learning_efficiency


def _geometry(le, name, scale):
    cfg = le.model_config(name, scale, None)
    return [(g['block'], g['cell_px']) for g in le.tap_geometry(cfg)], cfg


# ViT-B/16 at 224 px (the paper's recipe): blocks 1, 3, 9, 11 with cells of 4, 8, 16, 32 px
VIT_B_CELLS = [(1, 4), (3, 8), (9, 16), (11, 32)]


def test_cifar_stays_the_default_protocol(le, tmp_path):
    args = le.parse_args(['run', '--data-root', str(tmp_path)])
    assert args.protocol == 'cifar' and args.img_size == 32
    assert (args.scale['patch_size'], args.budgets, args.train_images, args.test_images,
            args.batch_size) == (4, [4, 8, 12, 16], 5000, 5000, 64)
    assert args.work_dir.endswith('learning_efficiency')
    hog, _ = _geometry(le, 'LocalMIM-HOG', args.scale)
    assert hog == [(1, 1), (3, 2), (5, 4), (7, 8)]  # 4-px patches at scales 4, 2, 1, 0.5


def test_caltech128_geometry_is_vit_b_16s(le, tmp_path):
    args = le.parse_args(['run', '--protocol', 'caltech128', '--data-root', str(tmp_path)])
    cifar = le.SCALES['cpu']
    assert (args.img_size, args.scale['patch_size']) == (128, 16)
    assert (args.img_size // args.scale['patch_size']) ** 2 == 64  # the CIFAR protocol's tokens
    # everything but the geometry and the data is the CIFAR protocol's
    assert args.scale['encoder'] == cifar['encoder'] and args.batch_size == cifar['batch_size']
    assert (args.probe_epochs, args.blr, args.cooldown, args.seeds) == (100, 1.5e-3, 0.2, [0, 1])
    assert (args.train_images, args.test_images, args.eval_train_images) == (0, 0, 0)  # all
    assert args.work_dir == osp.join('work_dirs', 'benchmarks', 'learning_efficiency_caltech')
    expected = {'LocalMIM-HOG': [(1, 4), (3, 8), (5, 16), (7, 32)],
                'LocalMIM-pixel': [(1, 4), (3, 8), (5, 16), (7, 32)],
                'MAE': [(7, 16)],
                'LocalMIM-HOG top tap': [(7, 32)],
                'LocalMIM-HOG one scale': [(1, 16), (3, 16), (5, 16), (7, 16)]}
    for name, cells in expected.items():
        geometry, cfg = _geometry(le, name, args.scale)
        assert geometry == cells, name
        assert cfg['backbone']['mask_ratio'] == 0.75, name
    vitb = le.tap_geometry(method_config('LocalMIM-HOG', **le.VIT_B))
    assert [(g['block'], g['cell_px']) for g in vitb] == VIT_B_CELLS
    # MAE's largest budget sees about as many images as the CIFAR protocol's (16 x 5,000)
    assert abs(args.budgets[-1] * 3306 / (16 * 5000) - 1) < 0.01
    assert [e for e in args.budgets if 3 * e in args.budgets] == [6, 8]  # LocalMIM@E vs MAE@3E
    # the GPU variant: ViT-S/16 (12 blocks), whose taps are ViT-B's
    gpu = le.parse_args(['run', '--protocol', 'caltech128', '--device', 'cuda', '--data-root',
                         str(tmp_path)])
    assert (gpu.img_size, gpu.scale['patch_size'], gpu.scale['encoder']) == (
        128, 16, le.SCALES['cuda']['encoder'])
    assert _geometry(le, 'LocalMIM-HOG', gpu.scale)[0] == VIT_B_CELLS


def test_caltech128_targets_have_one_cell_per_4_to_32_px(le):
    """The HOG and pixel targets of a 128-px image: (128 / cell)^2 cells per tap."""
    scale = le.CALTECH128['cpu']
    image = torch.rand(1, 3, 128, 128) * 255
    for name, width in (('LocalMIM-HOG', lambda cell: 27), ('LocalMIM-pixel',
                                                           lambda cell: 3 * cell * cell)):
        model = le.build_model(le.model_config(name, scale, None))
        targets = model.target_generator(image)
        assert [tuple(t.shape) for t in targets] == [
            (1, (128 // cell) ** 2, width(cell)) for cell in (4, 8, 16, 32)], name


def _block(n, dims):  # qkv + proj + MLP (ratio 4), q k^T and a v, two LayerNorms (5 / element)
    return n * 12 * dims * dims + 2 * n * n * dims + 2 * 5 * n * dims


def _mae_flops(img, patch, depth, dims, width):
    """Multiply-adds of MAE's forward by hand: (encoder, decoder)."""
    patches = (img // patch) ** 2
    seen = patches // 4 + 1  # 25 % of the patches stay visible, plus the cls token
    encoder = patches * 3 * patch * patch * dims + depth * _block(seen, dims) + 5 * seen * dims
    tokens = patches + 1  # the decoder (8 blocks) sees every patch and the cls token
    decoder = (seen * dims * width + 8 * _block(tokens, width) + 5 * tokens * width
               + tokens * width * 3 * patch * patch)
    return encoder, decoder


def _one_scale_flops(img, patch, depth, dims, width, taps=4, nbins=9):
    """LocalMIM-HOG with every tap at scale 1 by hand: (encoder, decoder). No final norm; each
    tap: the neck's LayerNorm, the decoder's embedding, one block over the patches and the cls
    token, its LayerNorm and a 1x1 conv to 3 x nbins channels on the patch grid; and the
    sin-cos position table of the grid (built once, an outer product the counter sees as an
    einsum: positions x width / 4)."""
    patches = (img // patch) ** 2
    seen = patches // 4 + 1
    encoder = patches * 3 * patch * patch * dims + depth * _block(seen, dims)
    tokens = patches + 1
    per_tap = (5 * seen * dims + seen * dims * width + _block(tokens, width) + 5 * tokens * width
               + patches * width * 3 * nbins + patches * width // 4)
    return encoder, taps * per_tap


def test_caltech128_decoder_flop_ratios_by_hand(le):
    scale = le.CALTECH128['cpu']
    # ViT-B/224: MAE's 512-wide decoder weighs 1.22 encoders (fvcore conventions, by hand)
    vitb_enc, vitb_dec = _mae_flops(224, 16, 12, 768, 512)
    vitb_ratio = vitb_dec / vitb_enc
    assert vitb_ratio == pytest.approx(1.219, abs=1e-3)
    chosen = le.flop_matched_decoder('MAE', scale, vitb_ratio)
    width = chosen['embed_dims']

    def ratio(w):
        encoder, decoder = _mae_flops(128, 16, 8, 128, w)
        return decoder / encoder

    assert (chosen['flops']['encoder'], chosen['flops']['decoder']) == _mae_flops(
        128, 16, 8, 128, width)
    assert abs(ratio(width) - vitb_ratio) <= min(abs(ratio(width + d) - vitb_ratio)
                                                 for d in (-4, 4))
    assert abs(ratio(width) - vitb_ratio) < 0.05
    # LocalMIM-HOG with one scale: the counter agrees with the hand count at any width
    cfg = le.model_config('LocalMIM-HOG one scale', scale, dict(embed_dims=40, num_heads=1))
    flops = le.forward_flops(le.build_model(cfg), 128)
    assert (flops['encoder'], flops['decoder']) == _one_scale_flops(128, 16, 8, 128, 40)


def _jpeg(color, size):
    buffer = io.BytesIO()
    Image.new('RGB', size, color).save(buffer, 'JPEG', quality=95)
    return buffer.getvalue()


def _archive(path):
    """A Caltech-layout archive: caltech101_dev/{train,test}/<class>/image_NNNN.jpg, non-square
    images (shrunk to fit 128 x 128, aspect kept) of one colour each, and a README."""
    layout = {'train': {'ant': 3, 'bass': 2}, 'test': {'ant': 1, 'bass': 2}}
    colors, index = {}, 0
    with tarfile.open(path, 'w:gz') as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add('caltech101_dev/README.md', b'test archive\n')
        for split, classes in layout.items():
            for label, (name, count) in enumerate(classes.items()):
                for i in range(count):
                    color = (40 * index % 256, 200 - 15 * index, 10 + 20 * index)
                    size = (128, 96) if index % 2 else (85, 128)
                    add(f'caltech101_dev/{split}/{name}/image_{i + 1:04d}.jpg', _jpeg(color, size))
                    colors.setdefault(split, []).append((color, label))
                    index += 1
    return colors


def test_caltech128_data_split(le, tmp_path):
    colors = _archive(tmp_path / 'caltech.tar.gz')
    args = le.parse_args(['run', '--protocol', 'caltech128', '--archive',
                          str(tmp_path / 'caltech.tar.gz'), '--cache-dir', str(tmp_path / 'c')])
    assert args.data_root == str(tmp_path / 'c' / 'caltech' / 'caltech101_dev')
    pretrain = le.load_pretrain_images(args)
    data = le.load_eval_data(args)
    assert pretrain.shape == (5, 3, 128, 128) and data['test_x'].shape == (3, 3, 128, 128)
    assert data['classes'] == ['ant', 'bass']
    # pre-training and the k-NN bank / probe: the train split; scores: the test split
    assert torch.equal(pretrain, data['train_x'])
    for split, images, labels in (('train', data['train_x'], data['train_y']),
                                  ('test', data['test_x'], data['test_y'])):
        means = images.float().mean(dim=(2, 3))
        expected = torch.tensor([c for c, _ in colors[split]], dtype=torch.float32)
        assert (means - expected).abs().max() < 4, split  # each image is its own, JPEG aside
        assert labels.tolist() == [label for _, label in colors[split]]


def test_evaluate_takes_the_image_size_of_the_checkpoints(le, tmp_path):
    cfg = le.model_config('MAE', le.CALTECH128['cpu'], dict(embed_dims=16, num_heads=1))
    path = str(tmp_path / 'mae.pth')
    torch.save(dict(state_dict={}, meta=dict(model=cfg)), path)
    args = le.parse_args(['evaluate', path, '--data-root', str(tmp_path)])
    assert args.img_size == 128
    with pytest.raises(SystemExit):
        le.parse_args(['evaluate', str(tmp_path / 'missing.pth'), '--data-root', str(tmp_path)])


@pytest.mark.skipif(not osp.isfile(CALTECH), reason='../shared/data/caltech101_dev_128.tar.gz '
                    'is not present (it is not part of a clone)')
def test_the_caltech_archive_has_disjoint_train_and_test_splits():
    with tarfile.open(CALTECH) as tar:
        names = [m.name for m in tar.getmembers() if m.name.endswith('.jpg')]
    splits = {}
    for name in names:
        _, split, cls, file = name.split('/')
        splits.setdefault(split, set()).add((cls, file))
    assert {k: len(v) for k, v in splits.items()} == {'train': 3306, 'test': 1652}
    assert {c for c, _ in splits['train']} == {c for c, _ in splits['test']}
    assert len({c for c, _ in splits['train']}) == 50
    assert not splits['train'] & splits['test']  # no file of a class in both splits
