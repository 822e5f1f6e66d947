"""Per-layer reconstructions of a few fixed images, drawn while the model pre-trains."""
from typing import Sequence, Union

from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from ...models.utils import model_input_size
from ...runtime.model_wrappers import unwrap_model
from .periodic_check_hook import PeriodicCheckHook
from .training_state_guard import guard_training_state

__all__ = ['LiveReconstructionHook']


@HOOKS.register_module()
class LiveReconstructionHook(PeriodicCheckHook):
    """Every ``interval`` epochs (or iterations) draw what each supervised layer reconstructs
    for a few fixed images: the reconstruction viewer's panels (input, masked input, target,
    prediction; HOG glyphs with their legend, or pixels), one row per layer, one figure per
    image.

    Each figure goes to the visualizer as ``reconstruction_<image>`` with the epoch (or
    iteration) as its step: a PNG under ``<work_dir>/<timestamp>/vis_data/vis_image/`` with the
    default ``LocalVisBackend``, an image in TensorBoard with ``TensorboardVisBackend``.

    Each image keeps its mask from one check to the next (drawn from ``seed`` as by
    ``tools/analysis_tools/visualize_reconstruction.py --seed``), so successive figures show
    the model, not the mask, changing. Runs on rank 0 only, with no collective, under
    :func:`guard_training_state`: random states, mask generators and module modes are restored,
    so training (and bit-exact ``--resume``) is unchanged. Works for LocalMIM models with HOG or
    pixel targets, ViT or Swin encoders.

    Args:
        images (str | Sequence[str]): Image files and / or folders (searched recursively,
            sorted). Defaults to the shipped sample validation images.
        max_images (int): Draw the first N images found. Defaults to 2.
        interval (int): Draw every ``interval`` epochs (``by_epoch``) or iterations; the last
            epoch (iteration) is always drawn.
        by_epoch (bool): Count ``interval`` in epochs. Defaults to True.
        initial (bool): Also draw the initial model before training (not when resuming).
        seed (int): Seed of the masks. Defaults to 0.
    """

    def __init__(self,
                 images: Union[str, Sequence[str]] = 'data/sample_cifar/val',
                 max_images: int = 2,
                 interval: int = 1,
                 by_epoch: bool = True,
                 initial: bool = False,
                 seed: int = 0) -> None:
        super().__init__(interval=interval, by_epoch=by_epoch, initial=initial)
        if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
            raise ValueError(f'LiveReconstructionHook: max_images={max_images!r} must be an '
                             'integer >= 1')
        self.images = [images] if isinstance(images, str) else list(images)
        self.max_images = max_images
        self.seed = seed
        self._inputs = None

    def setup(self, runner) -> None:
        from ...analysis.images import ImageInput, find_images
        from ...analysis.reconstruction import check_reconstruction_model
        model = unwrap_model(runner.model)
        check_reconstruction_model(model)
        if not is_main_process():
            return
        size = model_input_size(model)
        paths = find_images(self.images, self.max_images)
        self._inputs = [ImageInput(path, size, model.data_preprocessor) for path in paths]
        print_log(f'LiveReconstructionHook: drawing {", ".join(i.name for i in self._inputs)} '
                  f'every {self.interval} {"epoch" if self.by_epoch else "iteration"}(s)',
                  logger='current')

    def check(self, runner, epoch: int, iteration: int) -> None:
        self._draw(runner, step=epoch if self.by_epoch else iteration)

    def _draw(self, runner, step: int) -> None:
        if not is_main_process():
            return
        from ...analysis.images import figure_to_rgb
        from ...analysis.reconstruction import reconstruct
        from ...analysis.reconstruction_figure import reconstruction_figure
        unit = 'epoch' if self.by_epoch else 'iter'
        with guard_training_state(runner.model) as model:
            for module in model.modules():
                if getattr(module, 'mask_generator', None) is not None:
                    module.mask_generator = None  # masks from `seed`, as the offline viewer
            device = next(model.parameters()).device
            for image in self._inputs:
                x = image.tensor(device)
                layers, patch_mask = reconstruct(model, x, self.seed)
                fig = reconstruction_figure(image, x.cpu(), layers, patch_mask,
                                            model.target_generator,
                                            title=f'{image.name}, {unit} {step}')
                runner.visualizer.add_image(f'reconstruction_{image.name}', figure_to_rgb(fig),
                                            step=step)
        print_log(f'LiveReconstructionHook: drew {len(self._inputs)} reconstruction figure(s) '
                  f'for {unit} {step} (reconstruction_<image>_{step}.png under '
                  f'{runner.log_dir}/vis_data/vis_image with the LocalVisBackend)',
                  logger='current')
