import torch
import torch.nn.functional as F


def scale_mask(mask: torch.Tensor, scale: float) -> torch.Tensor:
    """Map a (B, h, w) patch mask (1 = masked) to the grid of a target at ``scale``.

    For ``scale >= 1`` each patch bit is repeated ``scale x scale`` times (a binary mask on the
    finer grid); for ``scale < 1`` the mask is average-pooled over ``1/scale`` patches, giving soft
    weights (0, .25, .5, .75, 1 for 0.5) on the coarser grid.
    """
    mask = mask.float()
    if scale >= 1:
        s = int(scale)
        return mask.repeat_interleave(s, dim=1).repeat_interleave(s, dim=2)
    return F.avg_pool2d(mask.unsqueeze(1), round(1 / scale)).squeeze(1)
