"""Arguments shared by the analysis tools (mmpretrain's tool conventions)."""
import argparse
import os

from mmengine.config import DictAction

__all__ = ['add_model_args', 'add_image_args', 'parse_point', 'use_agg_backend']

SAMPLE_IMAGES = 'data/sample_cifar/val'


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('config', help='model config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (runner epoch_*.pth or published)')
    parser.add_argument('--device', default='cpu', help='device, e.g. cpu or cuda:0')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value pairs')


def add_image_args(parser: argparse.ArgumentParser, max_images: int) -> None:
    parser.add_argument('--images', nargs='+', default=[SAMPLE_IMAGES],
                        help=f'image files and/or folders (searched recursively); default '
                        f'{SAMPLE_IMAGES}')
    parser.add_argument('--max-images', type=int, default=max_images,
                        help=f'use at most this many images (default {max_images}; 0: all)')
    parser.add_argument('--out-dir', required=True, help='folder for the outputs')


def parse_point(text: str):
    """``X,Y`` pixel coordinates of the original image (x to the right, y down)."""
    try:
        x, y = (float(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'point {text!r} is not of the form X,Y (e.g. 12,30)')
    return x, y


def use_agg_backend() -> None:
    os.environ.setdefault('MPLBACKEND', 'Agg')
    import matplotlib
    matplotlib.use('Agg')
