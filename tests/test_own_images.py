"""Pre-training on a folder of your own images: nested folders, mixed formats and modes, corrupt
files; only the data root changes."""
import glob
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from PIL import Image

from localmim_mm.datasets import (CorruptImageError, StrictLoadImageFromFile,
                                  UnlabeledImageFolder)

from .conftest import REPO, train

OWN_IMAGES_CONFIG = osp.join(REPO, 'configs', 'localmim',
                             'localmim_vit-tiny-p8_1xb32-coslr-20e_own-images.py')
SAMPLES = sorted(glob.glob(osp.join(REPO, 'data', 'sample_cifar', 'train', '*', '000[0-3].jpg')))


def rgb(i: int) -> np.ndarray:
    with Image.open(SAMPLES[i]) as img:
        return np.asarray(img.convert('RGB'))


def save(path, image: Image.Image, **kwargs) -> str:
    os.makedirs(osp.dirname(path), exist_ok=True)
    image.save(path, **kwargs)
    return str(path)


def write_mode(kind: str, i: int, path) -> str:
    """Sample image ``i`` saved as ``kind``; a 16-bit PNG holds 256 * gray + 100."""
    img = Image.fromarray(rgb(i))
    if kind == 'gray':
        return save(path, img.convert('L'))
    if kind == 'rgba':
        alpha = Image.fromarray(np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1)))
        rgba = img.convert('RGBA')
        rgba.putalpha(alpha)
        return save(path, rgba)
    if kind == 'palette':
        return save(path, img.convert('P', palette=Image.Palette.ADAPTIVE, colors=64))
    if kind == 'cmyk':
        return save(path, img.convert('CMYK'), quality=95)
    if kind == 'gray16':
        gray = np.asarray(img.convert('L')).astype(np.uint16) * 256 + 100  # <= 65380
        return save(path, Image.fromarray(gray))
    return save(path, img)


def build_folder(root) -> dict:
    """40 sample images in nested folders and many formats, 2 corrupt files, 1 non-image."""
    kinds = ['gray', 'rgba', 'palette', 'cmyk', 'gray16', 'rgb']
    suffix = dict(gray='png', rgba='png', palette='png', cmyk='jpg', gray16='png')
    rgb_formats = ['jpg', 'webp', 'bmp', 'tif', 'gif', 'JPEG']
    written = []
    for i in range(40):
        kind = kinds[i % len(kinds)]
        ext = suffix.get(kind) or rgb_formats[i // len(kinds) % len(rgb_formats)]
        folder = osp.join(root, f'site{i % 3}', *(['camera_b', 'day2'] if i % 2 else []))
        written.append(write_mode(kind, i, osp.join(folder, f'img{i:02d}.{ext}')))
    truncated = osp.join(root, 'site0', 'broken_upload.jpg')
    with open(written[5], 'rb') as f:
        data = f.read()
    with open(truncated, 'wb') as f:
        f.write(data[:len(data) // 2])
    empty = osp.join(root, 'site1', 'camera_b', 'empty.png')
    open(empty, 'wb').close()
    with open(osp.join(root, 'site2', 'notes.txt'), 'w') as f:
        f.write('not an image')
    return dict(images=written, corrupt=[truncated, empty])


def load(path, backend='cv2') -> np.ndarray:
    """What the pipeline's loader gives, back in RGB order."""
    loader = StrictLoadImageFromFile(imdecode_backend=backend)
    img = loader(dict(img_path=path))['img']
    assert img.dtype == np.uint8 and img.shape == (32, 32, 3), (path, img.dtype, img.shape)
    return img[..., ::-1]


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_every_mode_becomes_8bit_rgb(tmp_path, backend):
    source = rgb(0)
    gray = np.asarray(Image.fromarray(source).convert('L')).astype(int)
    expected_gray = np.repeat(gray[..., None], 3, axis=2)
    np.testing.assert_array_equal(load(write_mode('gray', 0, tmp_path / 'g.png'), backend),
                                  expected_gray)
    # Alpha is dropped: the colour under each pixel stays, whatever its transparency.
    np.testing.assert_array_equal(load(write_mode('rgba', 0, tmp_path / 'a.png'), backend),
                                  source)
    palette_path = write_mode('palette', 0, tmp_path / 'p.png')
    with Image.open(palette_path) as img:
        expanded = np.asarray(img.convert('RGB'))  # the palette lookup
    np.testing.assert_array_equal(load(palette_path, backend), expanded)
    # 16-bit: the top 8 bits of 256 * g + 100 are g (Pillow's own conversion gives white).
    got16 = load(write_mode('gray16', 0, tmp_path / 'g16.png'), backend)
    np.testing.assert_array_equal(got16, expected_gray)
    colour16 = source.astype(np.uint16) * 256 + 99
    cv2.imwrite(str(tmp_path / 'c16.png'), colour16[..., ::-1])  # Pillow cannot write 16-bit RGB
    np.testing.assert_array_equal(load(str(tmp_path / 'c16.png'), backend), source)
    # CMYK JPEG (lossy): within JPEG error of the RGB it was made from.
    cmyk = load(write_mode('cmyk', 0, tmp_path / 'c.jpg'), backend).astype(int)
    assert np.abs(cmyk - source.astype(int)).mean() < 4


def test_folder_lists_nested_images_and_names_what_is_missing(tmp_path):
    made = build_folder(tmp_path / 'mine')
    dataset = UnlabeledImageFolder(str(tmp_path / 'mine'), pipeline=[])
    found = sorted(osp.normpath(d['img_path']) for d in dataset.load_data_list())
    assert found == sorted(osp.normpath(p) for p in made['images'] + made['corrupt'])
    with pytest.raises(FileNotFoundError, match='is not a folder.*data_root'):
        UnlabeledImageFolder(str(tmp_path / 'nowhere'), pipeline=[])
    os.makedirs(tmp_path / 'texts')
    open(tmp_path / 'texts' / 'a.txt', 'w').close()
    with pytest.raises(FileNotFoundError, match='no image in'):
        UnlabeledImageFolder(str(tmp_path / 'texts'), pipeline=[])


def test_corrupt_file_is_named_or_skipped(tmp_path):
    made = build_folder(tmp_path / 'mine')
    with pytest.raises(CorruptImageError, match='broken_upload.jpg'):
        StrictLoadImageFromFile()(dict(img_path=made['corrupt'][0]))
    loader = StrictLoadImageFromFile(skip_corrupt=True)
    assert all(loader(dict(img_path=p)) is None for p in made['corrupt'])
    assert int(loader.num_skipped) == 2


def test_pretrains_on_own_folder_with_only_data_root_changed(tmp_path):
    made = build_folder(tmp_path / 'mine')
    work_dir = tmp_path / 'work'
    proc = train(OWN_IMAGES_CONFIG, work_dir, '--cfg-options',
                 f'train_dataloader.dataset.data_root={tmp_path / "mine"}')
    out = proc.stdout + proc.stderr
    assert f'UnlabeledImageFolder: {len(made["images"]) + 2} images in 7 folder(s)' in out
    epochs = 20  # the config's; every epoch meets each corrupt file (a redraw may meet it again)
    truncated = out.count(f'skipped corrupt image {made["corrupt"][0]}: truncated JPEG')
    empty = out.count(f'skipped image file {made["corrupt"][1]} is empty')
    assert truncated >= epochs and empty >= epochs
    assert f'({truncated + empty} corrupt images skipped so far)' in out  # counted, all workers
    assert osp.isfile(work_dir / f'epoch_{epochs}.pth')
