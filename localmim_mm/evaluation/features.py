"""Average-pooled features of a backbone's last stage: the one feature extractor of the k-NN /
linear-probe evaluations (learning-efficiency benchmark, ``RepresentationMonitorHook``)."""
from typing import Callable, Optional

import torch


@torch.no_grad()
def extract_features(backbone: torch.nn.Module, images: torch.Tensor, mean=None, std=None,
                     batch_size: int = 256, device='cpu',
                     preprocess: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
                     ) -> torch.Tensor:
    """(N, C) features of uint8 RGB ``images`` (N, 3, H, W).

    Each batch is normalised by ``preprocess(batch)`` when given (e.g. the model's own data
    preprocessor), else as ``(x - mean) / std`` (0-255 scale, RGB), and run through the
    backbone's unmasked forward (``backbone(x, mask=None)``):

    * a ViT-style backbone (``backbone.layers``): the output of its last block (before any final
      norm, the same definition for every method), averaged over the patch tokens (the
      ``num_extra_tokens`` leading tokens, e.g. cls, dropped);
    * a pyramid backbone (Swin): its last output, averaged over positions.
    """
    if preprocess is None:
        if mean is None or std is None:
            raise ValueError('extract_features: give mean and std, or preprocess')
        preprocess = _normaliser(mean, std, device)
    pooled = _vit_pooled if hasattr(backbone, 'layers') else _pyramid_pooled
    was_training = backbone.training
    backbone.eval()
    try:
        return pooled(backbone, images, preprocess, batch_size, device)
    finally:
        backbone.train(was_training)


def _normaliser(mean, std, device) -> Callable[[torch.Tensor], torch.Tensor]:
    mean = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return lambda batch: (batch.to(device).float() - mean) / std


def _batches(images: torch.Tensor, batch_size: int):
    return (images[start:start + batch_size] for start in range(0, len(images), batch_size))


def _vit_pooled(backbone, images, preprocess, batch_size: int, device) -> torch.Tensor:
    extra = getattr(backbone, 'num_extra_tokens', 1)
    captured = []
    handle = backbone.layers[-1].register_forward_hook(lambda m, i, o: captured.append(o))
    feats = []
    try:
        for batch in _batches(images, batch_size):
            captured.clear()
            backbone(preprocess(batch).to(device), mask=None)
            feats.append(captured[-1][:, extra:].mean(dim=1).float().cpu())
    finally:
        handle.remove()
    return torch.cat(feats)


def _pyramid_pooled(backbone, images, preprocess, batch_size: int, device) -> torch.Tensor:
    feats = []
    for batch in _batches(images, batch_size):
        out = backbone(preprocess(batch).to(device), mask=None)
        feats.append(out[-1].flatten(2).mean(-1).float().cpu())
    return torch.cat(feats)
