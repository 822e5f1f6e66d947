"""Normalized mutual information between query and key positions of an attention map."""
import torch

__all__ = ['attention_nmi']


def attention_nmi(attn: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """NMI of the query/key joint distribution defined by attention rows.

    With queries uniform, ``p(q) = 1/N``, and ``p(k|q)`` the attention row, the joint is
    ``p(q, k) = p(k|q) / N`` and ``p(k)`` the mean row. The result is
    ``I(Q; K) / sqrt(H(Q) H(K))``: 0 when every query attends the same way, 1 when each query
    attends one key of its own (a permutation). When ``H(K) = 0`` (every query on one key) the
    mutual information is 0 too and the NMI is defined as 0.

    Args:
        attn (Tensor): ``(..., N, N)`` attention, each row a distribution over keys.

    Returns:
        Tensor: ``(...)`` NMI per leading index (e.g. per image and head).
    """
    if attn.dim() < 2 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f'attention_nmi expects (..., N, N) square attention, got '
                         f'{tuple(attn.shape)}')
    attn = attn.double()
    n = attn.shape[-1]
    p_key = attn.mean(dim=-2, keepdim=True)
    ratio = torch.where(attn > 0, attn / p_key.clamp_min(eps), torch.ones_like(attn))
    mutual_info = (attn * torch.log(ratio)).sum(dim=(-2, -1)) / n
    key_entropy = -(p_key * torch.log(p_key.clamp_min(eps))).sum(dim=(-2, -1))
    query_entropy = torch.log(torch.tensor(float(n), dtype=attn.dtype))
    denom = torch.sqrt(query_entropy * key_entropy)
    return torch.where(denom > eps, mutual_info / denom.clamp_min(eps),
                       torch.zeros_like(mutual_info)).float()
