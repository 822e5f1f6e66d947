"""k-nearest-neighbour classification on frozen features (cosine similarity)."""
from typing import Optional

import torch
import torch.nn.functional as F


def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                k: int = 20, temperature: Optional[float] = 0.07,
                num_classes: Optional[int] = None, chunk: int = 1024) -> torch.Tensor:
    """Predicted labels of ``test_feats`` by their ``k`` most cosine-similar training features.

    Each neighbour votes for its label with weight ``exp(similarity / temperature)`` (the
    weighted k-NN of InstDisc / DINO); ``temperature=None`` gives a plain majority vote. Runs on
    the device of ``train_feats``; the predictions are on that device.
    """
    if train_feats.ndim != 2 or test_feats.ndim != 2 or train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f'knn_predict: features must be (N, C) with equal C, got '
                         f'{tuple(train_feats.shape)} and {tuple(test_feats.shape)}')
    if len(train_labels) != len(train_feats):
        raise ValueError(f'knn_predict: {len(train_feats)} training features but '
                         f'{len(train_labels)} labels')
    if not 1 <= k <= len(train_feats):
        raise ValueError(f'knn_predict: k={k} must lie in [1, {len(train_feats)}] (the number '
                         'of training features)')
    num_classes = num_classes or int(train_labels.max()) + 1
    device = train_feats.device
    bank = F.normalize(train_feats.float(), dim=1)
    train_labels = train_labels.to(device)
    preds = []
    for start in range(0, len(test_feats), chunk):
        query = F.normalize(test_feats[start:start + chunk].to(device).float(), dim=1)
        sims, idx = (query @ bank.t()).topk(k, dim=1)
        weights = torch.ones_like(sims) if temperature is None else (sims / temperature).exp()
        votes = torch.zeros(len(query), num_classes, dtype=weights.dtype, device=device)
        votes.scatter_add_(1, train_labels[idx], weights)
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


def knn_accuracy(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 test_labels: torch.Tensor, **kwargs) -> float:
    """Top-1 accuracy (0..1) of :func:`knn_predict`."""
    preds = knn_predict(train_feats, train_labels, test_feats, **kwargs)
    return (preds == test_labels.to(preds.device)).float().mean().item()
