"""Has the model learned more than the average target? Its masked-cell loss per supervised layer
against the loss of predicting, in every cell, the mean target of the images scored."""
from typing import Dict, NamedTuple

import torch
from torch import nn

__all__ = ['LayerVsMean', 'learned_vs_mean']


class LayerVsMean(NamedTuple):
    model: float  # the model's masked-cell loss
    mean: float  # the loss of the constant mean-target prediction, same cells, same loss

    @property
    def ratio(self) -> float:
        """model / mean: 1 = no better than the mean target, 0 = perfect."""
        return self.model / self.mean if self.mean > 0 else float('nan')


@torch.no_grad()
def learned_vs_mean(model: nn.Module, images: torch.Tensor,
                    seed: int = 0) -> Dict[str, LayerVsMean]:
    """Per supervised layer, the model's masked-cell loss on ``images`` against that of the
    **mean-target predictor**, which predicts in every cell the mean target vector of the layer
    over all cells of all ``images`` (what a model that ignores its input converges to; in a
    glyph panel, the same star in every cell).

    Both go through the head's own loss (``head.loss_by_pred``) on the same masks (drawn from
    ``seed`` with the global RNG, which this changes), so they differ only in the prediction.

    Args:
        model: a LocalMIM pre-training model (backbone, neck, head, target generator), in the
            mode you want it measured in (``eval()`` for a trained model).
        images: (N, 3, H, W) model inputs, normalised as by the data preprocessor; scored in one
            batch (a few hundred small images at most).
    """
    torch.manual_seed(seed)
    feats, mask, _ = model.backbone(images, mask=True)
    preds = model.head(model.neck(feats), mask)
    targets = model.target_generator(images)
    mean_preds = [target.float().mean(dim=(0, 1)).view(1, -1, 1, 1).expand_as(pred)
                  for target, pred in zip(targets, preds)]
    learned = model.head.loss_by_pred(preds, targets, mask)
    constant = model.head.loss_by_pred(mean_preds, targets, mask)
    return {name: LayerVsMean(float(a), float(b))
            for name, a, b in zip(model.backbone.tap_names, learned, constant)}
