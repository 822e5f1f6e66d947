"""Every image under a folder, at any depth, for pre-training on your own unlabeled images."""
import os.path as osp
from collections import Counter
from typing import Sequence

from mmengine.logging import print_log
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

__all__ = ['UnlabeledImageFolder', 'IMAGE_EXTENSIONS']

# What OpenCV (StrictLoadImageFromFile's default decoder) reads; case-insensitive.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.pbm', '.tif', '.tiff',
                    '.webp', '.gif')


@DATASETS.register_module()
class UnlabeledImageFolder(CustomDataset):
    """All image files under ``data_root`` (sub-folders searched recursively, sorted paths), no
    labels. ``CustomDataset(with_label=False)`` with a wider list of extensions, an error naming
    the folder when it is missing or holds no image, and a log line counting the images by type.

    Files of other types are ignored; an image file that cannot be decoded is the loader's
    business (``StrictLoadImageFromFile(skip_corrupt=True)`` names and counts each one).

    Args:
        data_root (str): The folder of images.
        extensions (Sequence[str]): File name endings taken as images (case-insensitive).
        **kwargs: As ``mmpretrain.datasets.CustomDataset`` (``pipeline``, ``indices``, ...).
    """

    def __init__(self, data_root: str, extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 **kwargs) -> None:
        if kwargs.pop('with_label', False):
            raise ValueError('UnlabeledImageFolder has no labels; use mmpretrain CustomDataset '
                             'for a class-folder dataset')
        if '://' not in data_root and not osp.isdir(data_root):
            raise FileNotFoundError(
                f'UnlabeledImageFolder: data_root={data_root!r} is not a folder; point it at your '
                'images, e.g. --cfg-options train_dataloader.dataset.data_root=/path/to/images')
        super().__init__(data_root=data_root, with_label=False, extensions=extensions, **kwargs)

    def load_data_list(self) -> list:
        try:
            data_list = super().load_data_list()
        except RuntimeError as err:  # CustomDataset raises it when no file has an extension taken
            raise FileNotFoundError(
                f'UnlabeledImageFolder: no image in {self.img_prefix!r} or its sub-folders '
                f'(file types taken: {", ".join(sorted(self.extensions))})') from err
        paths = [info['img_path'] for info in data_list]
        kinds = Counter(osp.splitext(p)[1].lower() for p in paths)
        folders = len({osp.dirname(p) for p in paths})
        shown = ', '.join(f'{n} {ext[1:]}' for ext, n in kinds.most_common())
        print_log(f'UnlabeledImageFolder: {len(paths)} images in {folders} folder(s) under '
                  f'{self.img_prefix} ({shown})', logger='current')
        return data_list
