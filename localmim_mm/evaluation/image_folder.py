"""Load an image-folder split (``<root>/<split>/<class>/<image>``) into one uint8 tensor."""
import hashlib
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Tuple

import numpy as np
import torch
from PIL import Image

from ..datasets.unlabeled_image_folder import IMAGE_EXTENSIONS
from ..transfer.checkpoint_file import atomic_output


def list_image_folder(root: str, split: str,
                      per_class: Optional[int] = None) -> Tuple[List[str], List[int], List[str]]:
    """Paths, labels and class names (sorted folder names) of a split; ``per_class`` keeps the
    first N images of each class (sorted by file name)."""
    split_dir = osp.join(root, split)
    if not osp.isdir(split_dir):
        raise FileNotFoundError(f'image folder split {split_dir!r} does not exist; expected '
                                f'{root}/{split}/<class>/<image> (set --data-root / the split '
                                'name to an existing folder)')
    classes = sorted(d for d in os.listdir(split_dir) if osp.isdir(osp.join(split_dir, d)))
    if not classes:
        raise FileNotFoundError(f'{split_dir!r} has no class folders')
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(f for f in os.listdir(osp.join(split_dir, name))
                       if f.lower().endswith(IMAGE_EXTENSIONS))
        files = files[:per_class] if per_class else files
        paths += [osp.join(split_dir, name, f) for f in files]
        labels += [label] * len(files)
    if not paths:
        raise FileNotFoundError(f'{split_dir!r} has class folders but no images')
    return paths, labels, classes


def load_image_folder(root: str, split: str, size: int, per_class: Optional[int] = None,
                      cache_dir: Optional[str] = None, workers: Optional[int] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor, List[str]]:
    """Images as a (N, 3, size, size) uint8 RGB tensor, their labels (N,) and the class names.

    Each image's shorter side is resized to ``size`` (bicubic) and the centre ``size x size``
    crop kept (square images are simply resized). Decoding runs in ``workers`` threads (default:
    the CPU count). With ``cache_dir`` the decoded arrays are stored as ``.npz`` and reused
    (keyed by the folder path, split, size, per_class and file list)."""
    paths, labels, classes = list_image_folder(root, split, per_class)
    cache = None
    if cache_dir:
        key = hashlib.sha1('\n'.join([osp.abspath(root), split, str(size), str(per_class),
                                      'short-side-centre-crop'] + paths).encode()).hexdigest()[:16]
        cache = osp.join(cache_dir, f'{split}_{size}px_{key}.npz')
        if osp.exists(cache):
            data = np.load(cache)
            return torch.from_numpy(data['images']), torch.from_numpy(data['labels']), classes
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:  # PIL releases the GIL
        images = np.stack(list(pool.map(lambda p: _load(p, size), paths)))
    labels = np.asarray(labels, dtype=np.int64)
    if cache:
        with atomic_output(cache, suffix='.npz') as tmp:
            np.savez(tmp, images=images, labels=labels)
    return torch.from_numpy(images), torch.from_numpy(labels), classes


def _load(path: str, size: int) -> np.ndarray:
    with Image.open(path) as img:
        img = img.convert('RGB')
        width, height = img.size
        if (width, height) != (size, size):
            scale = size / min(width, height)
            new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
            left, top = (new_w - size) // 2, (new_h - size) // 2
            img = img.resize((new_w, new_h), Image.BICUBIC).crop(
                (left, top, left + size, top + size))
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()
