"""Image loading that never trains on a corrupt or truncated file without saying so."""
import logging
from typing import Optional

import mmcv
import torch
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS

__all__ = ['CorruptImageError', 'StrictLoadImageFromFile', 'missing_end_marker']

# Bytes that end a complete file; both can only occur as markers (JPEG stuffs 0xFF in its data).
_JPEG_START, _JPEG_END = b'\xff\xd8', b'\xff\xd9'
_PNG_START, _PNG_END = b'\x89PNG', b'IEND'
_TAIL = 1024  # the end marker must lie in the last bytes (some writers append padding)


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


@TRANSFORMS.register_module()
class StrictLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` that raises :class:`CorruptImageError` naming the file when it is
    missing, unreadable, empty, undecodable or truncated.

    mmcv's loader fails on such files with a bare ``assert`` (gone under ``python -O``) or, with
    Pillow, the decoder's message without the path; some OpenCV builds accept truncated JPEGs.
    With ``skip_corrupt=True`` the sample is skipped instead: each skip is logged as a warning
    naming the file and the number skipped so far (counted across dataloader workers), and the
    dataset draws another sample (mmengine's ``BaseDataset`` re-fetches when a pipeline returns
    ``None``).

    Args:
        skip_corrupt (bool): Skip and count corrupt images instead of raising. Defaults to False.
        **kwargs: As ``mmcv.transforms.LoadImageFromFile`` (``ignore_empty`` is refused: it
            drops files silently).
    """

    def __init__(self, skip_corrupt: bool = False, **kwargs) -> None:
        if kwargs.get('ignore_empty'):
            raise ValueError('StrictLoadImageFromFile: ignore_empty=True would drop unreadable '
                             'images silently; use skip_corrupt=True (skips are logged and '
                             'counted)')
        super().__init__(**kwargs)
        self.skip_corrupt = skip_corrupt
        self.num_skipped = torch.zeros(1, dtype=torch.int64).share_memory_()

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
            img = mmcv.imfrombytes(data, flag=self.color_type, backend=self.imdecode_backend)
        except Exception as e:
            raise CorruptImageError(f'corrupt image {filename}: cannot decode ({e})') from e
        if img is None:
            raise CorruptImageError(f'corrupt image {filename}: the decoder returned nothing')
        return img

    def transform(self, results: dict) -> Optional[dict]:
        filename = results['img_path']
        try:
            img = self.read(filename)
        except CorruptImageError as e:
            if not self.skip_corrupt:
                raise
            self.num_skipped += 1
            print_log(f'StrictLoadImageFromFile: skipped {e} ({int(self.num_skipped)} corrupt '
                      'images skipped so far)', logger='current', level=logging.WARNING)
            return None
        if self.to_float32:
            img = img.astype('float32')
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, skip_corrupt={self.skip_corrupt})'
