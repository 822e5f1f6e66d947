"""Average-pooled patch features of a ViT-style backbone's last block."""
import torch


@torch.no_grad()
def extract_features(backbone: torch.nn.Module, images: torch.Tensor, mean, std,
                     batch_size: int = 256, device='cpu') -> torch.Tensor:
    """(N, C) features of uint8 RGB ``images`` (N, 3, H, W).

    The images are normalised with ``mean`` / ``std`` (0-255 scale, RGB), run through the
    backbone's unmasked forward (``backbone(x, mask=None)``), and the output of its last block
    ``backbone.layers[-1]`` (before any final norm, the same definition for every method) is
    averaged over the patch tokens (the ``num_extra_tokens`` leading tokens, e.g. cls, dropped).
    """
    if not hasattr(backbone, 'layers'):
        raise TypeError(f'extract_features needs a ViT-style backbone with `.layers`, got '
                        f'{type(backbone).__name__}')
    extra = getattr(backbone, 'num_extra_tokens', 1)
    captured = []
    handle = backbone.layers[-1].register_forward_hook(lambda m, i, o: captured.append(o))
    mean = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    was_training = backbone.training
    backbone.eval()
    feats = []
    try:
        for start in range(0, len(images), batch_size):
            x = (images[start:start + batch_size].to(device).float() - mean) / std
            captured.clear()
            backbone(x, mask=None)
            feats.append(captured[-1][:, extra:].mean(dim=1).float().cpu())
    finally:
        handle.remove()
        backbone.train(was_training)
    return torch.cat(feats)
