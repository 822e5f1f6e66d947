"""Image input / output shared by the analysis tools."""
import os
import os.path as osp
from typing import List, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from ..datasets.unlabeled_image_folder import IMAGE_EXTENSIONS

__all__ = ['ImageInput', 'add_legend', 'figure_to_rgb', 'find_images', 'load_image',
           'overlay_heatmap', 'preprocess_rgb', 'save_png']



def find_images(paths: Sequence[str], max_images: int = None) -> List[str]:
    """Image files from files and folders (folders searched recursively, sorted)."""
    found = []
    for path in paths:
        if osp.isdir(path):
            for root, _, names in sorted(os.walk(path)):
                found += [osp.join(root, n) for n in sorted(names)
                          if n.lower().endswith(IMAGE_EXTENSIONS)]
        elif osp.isfile(path):
            found.append(path)
        else:
            raise FileNotFoundError(f'image path {path!r} is neither a file nor a folder')
    if not found:
        raise FileNotFoundError(f'no image ({", ".join(IMAGE_EXTENSIONS)}) found in {list(paths)}')
    return found[:max_images] if max_images else found


class ImageInput:
    """An image resized to the model's input size, as uint8 RGB and as a normalised tensor.

    Args:
        path (str): image file.
        size (tuple): ``(H, W)`` model input size.
        preprocessor: the model's data preprocessor (mean / std and channel order are read
            from it; images are loaded as RGB and flipped to BGR when the model does not convert).
    """

    def __init__(self, path: str, size: Tuple[int, int], preprocessor):
        self.path = path
        # parent folder + stem: class-folder datasets reuse file names (airplane/0000.jpg, ...)
        parent = osp.basename(osp.dirname(osp.abspath(path)))
        self.name = f'{parent}_{osp.splitext(osp.basename(path))[0]}'
        image = load_image(path)
        self.original_size = image.size  # (W, H)
        self.rgb = np.asarray(image.resize((size[1], size[0]), Image.BICUBIC))
        self.preprocessor = preprocessor

    def to_pixel(self, x: float, y: float) -> Tuple[float, float]:
        """Map an (x, y) point of the original image to the resized model input."""
        w, h = self.original_size
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f'point (x={x:g}, y={y:g}) lies outside the {w}x{h} image '
                             f'{self.path}; give pixel coordinates with 0 <= x < {w} and '
                             f'0 <= y < {h}')
        return x * self.rgb.shape[1] / w, y * self.rgb.shape[0] / h

    def tensor(self, device='cpu') -> torch.Tensor:
        """(1, 3, H, W) float input, normalised by the model's own data preprocessor."""
        rgb = torch.from_numpy(self.rgb.copy()).permute(2, 0, 1).unsqueeze(0)
        return preprocess_rgb(self.preprocessor, rgb).float().to(device)

    def denormalise(self, x: torch.Tensor) -> np.ndarray:
        """(3, H, W) normalised tensor (model channel order) -> (H, W, 3) uint8 RGB."""
        mean, std = normalisation(self.preprocessor)
        x = x.detach().cpu().float() * std + mean
        if not _converts_to_rgb(self.preprocessor):
            x = x.flip(0)
        return x.clamp(0, 255).round().byte().permute(1, 2, 0).numpy()


def preprocess_rgb(preprocessor, rgb: torch.Tensor) -> torch.Tensor:
    """uint8 RGB images (N, 3, H, W) through the model's data preprocessor as a batch goes: the
    dataloader hands it BGR images (mmcv decodes to BGR; ``to_rgb`` converts them), so the images
    go in flipped to BGR."""
    return preprocessor(dict(inputs=rgb.flip(1), data_samples=None))['inputs']


def _converts_to_rgb(preprocessor) -> bool:
    """Whether the preprocessor turns BGR input into RGB, read from what it does to a one-pixel
    image whose B, G, R are 0, 1, 2 (its flag is private)."""
    probe = torch.tensor([0, 1, 2], dtype=torch.uint8).view(1, 3, 1, 1)
    out = preprocessor(dict(inputs=probe, data_samples=None))['inputs'].detach().cpu().float()
    mean, std = normalisation(preprocessor)
    return round(float(out[0, 0, 0, 0] * std[0, 0, 0] + mean[0, 0, 0])) == 2


def normalisation(preprocessor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` of shape (C, 1, 1); mmengine registers them only when it normalises."""
    if hasattr(preprocessor, 'mean'):
        return (preprocessor.mean.detach().cpu().float().view(-1, 1, 1),
                preprocessor.std.detach().cpu().float().view(-1, 1, 1))
    return torch.zeros(3, 1, 1), torch.ones(3, 1, 1)


def load_image(path: str) -> Image.Image:
    try:
        return Image.open(path).convert('RGB')
    except OSError as err:
        raise ValueError(f'cannot read image {path!r}: {err}') from err


def overlay_heatmap(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.55,
                    cmap: str = 'jet') -> np.ndarray:
    """Blend a heat map (any size, resized bilinearly, scaled to [0, 1]) over a uint8 image."""
    from matplotlib import colormaps
    h, w = rgb.shape[:2]
    heat = np.asarray(Image.fromarray(heat.astype(np.float32)).resize((w, h), Image.BILINEAR))
    span = heat.max() - heat.min()
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    colour = colormaps[cmap](heat)[..., :3] * 255
    return (alpha * colour + (1 - alpha) * rgb).round().astype(np.uint8)


def add_legend(fig, entries, ncol: int = 2) -> None:
    """A legend of colour swatches under the panels of ``fig``: ``entries`` are
    ``(RGB colour, meaning)`` pairs (e.g. ``hog_glyphs.hog_legend``)."""
    from matplotlib.patches import Patch
    handles = [Patch(facecolor=colour, edgecolor='0.5', label=label) for colour, label in entries]
    fig.legend(handles=handles, loc='upper center', bbox_to_anchor=(0.5, 0.0), ncol=ncol,
               fontsize=8, frameon=False)


def figure_to_rgb(fig) -> np.ndarray:
    """Render a matplotlib figure (with its legend) to an (H, W, 3) uint8 RGB image."""
    import io
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
    buffer.seek(0)
    with Image.open(buffer) as img:
        return np.asarray(img.convert('RGB'))


def save_png(fig, path: str) -> str:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches='tight')
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path
