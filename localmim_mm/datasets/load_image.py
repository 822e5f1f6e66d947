"""Image loading that never trains on a corrupt or truncated file without saying so, and turns
every image mode into 8-bit, 3-channel colour."""
import collections
import io
import logging
import os.path as osp
from typing import Optional

import mmcv
import numpy as np
import torch
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS
from PIL import Image, ImageOps

__all__ = ['CorruptImageError', 'StrictLoadImageFromFile', 'missing_end_marker',
           'decode_high_depth_gray']

# Bytes that end a complete file; both can only occur as markers (JPEG stuffs 0xFF in its data).
_JPEG_START, _JPEG_END = b'\xff\xd8', b'\xff\xd9'
_PNG_START, _PNG_END = b'\x89PNG', b'IEND'
_TAIL = 1024  # the end marker must lie in the last bytes (some writers append padding)
# Pillow's modes for 16-bit (and 32-bit integer) grayscale; its convert('RGB') clips them to white.
_HIGH_DEPTH_GRAY = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')
LISTED_PER_STREAK = 10  # skips of one run of consecutive unreadable images that are logged


class CorruptImageError(ValueError):
    """An image file that cannot be read or decoded completely."""


def missing_end_marker(data: bytes) -> Optional[str]:
    """Why a JPEG / PNG byte string is truncated, or ``None`` if its end marker is there.

    Depending on the build, OpenCV decodes a truncated JPEG with a grey bottom and only a
    warning on stderr, so truncation is checked on the bytes, whatever the decoder. Other
    formats are left to the decoder.
    """
    if data.startswith(_JPEG_START) and _JPEG_END not in data[-_TAIL:]:
        return 'truncated JPEG (no end-of-image marker FFD9)'
    if data.startswith(_PNG_START) and _PNG_END not in data[-_TAIL:]:
        return 'truncated PNG (no IEND chunk)'
    return None


def decode_high_depth_gray(data: bytes) -> Optional[np.ndarray]:
    """A 16-bit grayscale image as (H, W, 3) uint8 (the top 8 bits of each value, as OpenCV
    does), or ``None`` for any other mode. For the Pillow back end, whose conversion to RGB
    clips every value above 255 (a 16-bit PNG turns white)."""
    with Image.open(io.BytesIO(data)) as img:
        if img.mode not in _HIGH_DEPTH_GRAY:
            return None
        img = ImageOps.exif_transpose(img)
        gray = (np.asarray(img).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


@TRANSFORMS.register_module()
class StrictLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` that raises :class:`CorruptImageError` naming the file when it is
    missing, unreadable, empty, undecodable or truncated.

    With ``color_type='color'`` (the default) every mode becomes 8-bit, 3-channel colour, with
    either decoder: grayscale (and 1-bit) is repeated over the channels, palette images are
    expanded, CMYK JPEGs converted by the decoder, 16-bit images keep their top 8 bits, and an
    alpha channel is dropped (the colour stored under transparent pixels is kept, as OpenCV and
    Pillow do). ``docs/own_images.md`` lists the formats.

    mmcv's loader fails on such files with a bare ``assert`` (gone under ``python -O``) or, with
    Pillow, the decoder's message without the path; some OpenCV builds accept truncated JPEGs.
    With ``skip_corrupt=True`` the sample is skipped instead: each skip is logged as a warning
    naming the file and the number skipped so far (counted across dataloader workers), and the
    dataset draws another sample (mmengine's ``BaseDataset`` re-fetches when a pipeline returns
    ``None``). ``max_consecutive_corrupt`` unreadable images in a row (an unreadable folder) stop
    with one error naming the folder and the counts; of such a streak only the first 10 skips are
    logged.

    Args:
        skip_corrupt (bool): Skip and count corrupt images instead of raising. Defaults to False.
        max_consecutive_corrupt (int): With ``skip_corrupt``, this many unreadable images in a
            row (counted across workers) raise :class:`CorruptImageError`. Defaults to 50.
        **kwargs: As ``mmcv.transforms.LoadImageFromFile`` (``ignore_empty`` is refused: it
            drops files silently).
    """

    def __init__(self, skip_corrupt: bool = False, max_consecutive_corrupt: int = 50,
                 **kwargs) -> None:
        if kwargs.get('ignore_empty'):
            raise ValueError('StrictLoadImageFromFile: ignore_empty=True would drop unreadable '
                             'images silently; use skip_corrupt=True (skips are logged and '
                             'counted)')
        if isinstance(max_consecutive_corrupt, bool) or not isinstance(
                max_consecutive_corrupt, int) or max_consecutive_corrupt < 1:
            raise ValueError(f'StrictLoadImageFromFile: max_consecutive_corrupt='
                             f'{max_consecutive_corrupt!r}; give a whole number >= 1')
        super().__init__(**kwargs)
        self.skip_corrupt = skip_corrupt
        self.max_consecutive_corrupt = max_consecutive_corrupt
        # counted across dataloader workers (shared memory); the folders of this process's
        # current streak name where the unreadable images are
        self.num_skipped = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.num_consecutive = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._streak_folders = collections.deque(maxlen=max_consecutive_corrupt)

    def read(self, filename: str):
        try:
            data = fileio.get(filename, backend_args=self.backend_args)
        except Exception as e:
            raise CorruptImageError(f'cannot read image {filename}: {e}') from e
        if not data:
            raise CorruptImageError(f'image file {filename} is empty')
        reason = missing_end_marker(data)
        if reason:
            raise CorruptImageError(f'corrupt image {filename}: {reason}')
        try:
            img = None
            if self.imdecode_backend == 'pillow' and self.color_type == 'color':
                img = decode_high_depth_gray(data)
            if img is None:
                img = mmcv.imfrombytes(data, flag=self.color_type,
                                       backend=self.imdecode_backend)
        except Exception as e:
            raise CorruptImageError(f'corrupt image {filename}: cannot decode ({e})') from e
        if img is None:
            raise CorruptImageError(f'corrupt image {filename}: the decoder returned nothing')
        return img

    def transform(self, results: dict) -> Optional[dict]:
        if 'img_path' not in results and 'img' in results:
            return results  # already decoded (mmpretrain's inferencers load images themselves)
        filename = results['img_path']
        try:
            img = self.read(filename)
        except CorruptImageError as e:
            if not self.skip_corrupt:
                raise
            self._skip(filename, e)
            return None
        if int(self.num_consecutive):
            self.num_consecutive.zero_()
            self._streak_folders.clear()
        if self.to_float32:
            img = img.astype('float32')
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def _skip(self, filename: str, error: CorruptImageError) -> None:
        """Count and log a skipped image; stop once ``max_consecutive_corrupt`` in a row failed
        (the folder is unreadable: mmengine would redraw up to 1000 times per sample, logging
        each). Of a streak only the first ``LISTED_PER_STREAK`` skips are logged."""
        self.num_skipped += 1
        self.num_consecutive += 1
        streak = int(self.num_consecutive)
        self._streak_folders.append(osp.dirname(osp.abspath(filename)))
        if streak <= LISTED_PER_STREAK:
            more = (f'; the next unreadable images in a row are counted, not listed, and '
                    f'{self.max_consecutive_corrupt} in a row stop the run'
                    if streak == LISTED_PER_STREAK else '')
            print_log(f'StrictLoadImageFromFile: skipped {error} ({int(self.num_skipped)} corrupt '
                      f'images skipped so far{more})', logger='current', level=logging.WARNING)
        if streak >= self.max_consecutive_corrupt:
            folder = osp.commonpath(list(self._streak_folders))
            raise CorruptImageError(
                f'{streak} images in a row could not be read, under {folder} '
                f'({int(self.num_skipped)} corrupt images skipped in all): the images there are '
                'unreadable (corrupt, truncated or not images). Check the files named in the log, '
                'or point data_root at a folder of readable images')

    def __repr__(self) -> str:
        return (f'{super().__repr__()[:-1]}, skip_corrupt={self.skip_corrupt}, '
                f'max_consecutive_corrupt={self.max_consecutive_corrupt})')
