"""Nearest-neighbour video retrieval Recall@k (test clips against train clips, cosine)."""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F

__all__ = ['retrieval_recall']


def retrieval_recall(query_feats: torch.Tensor, query_labels: torch.Tensor,
                     gallery_feats: torch.Tensor, gallery_labels: torch.Tensor,
                     topk: Sequence[int] = (1, 5, 10, 20, 50)) -> Dict[str, float]:
    """Recall@k: a query is a hit if any of its k nearest gallery items has its label.

    Args:
        query_feats (Tensor): (Q, D) features of the queries (test clips).
        query_labels (Tensor): (Q,) int labels.
        gallery_feats (Tensor): (G, D) features of the gallery (train clips).
        gallery_labels (Tensor): (G,) int labels.
        topk (Sequence[int]): the k values; k > G is clipped to G.

    Returns:
        dict[str, float]: ``{'R@k': recall in percent}`` for each k.
    """
    if query_feats.dim() != 2 or gallery_feats.dim() != 2 or \
            query_feats.shape[1] != gallery_feats.shape[1]:
        raise ValueError(f'retrieval_recall: features must be (Q, D) and (G, D), got '
                         f'{tuple(query_feats.shape)} and {tuple(gallery_feats.shape)}')
    if gallery_feats.shape[0] == 0 or query_feats.shape[0] == 0:
        raise ValueError('retrieval_recall: empty query or gallery set')
    sim = F.normalize(query_feats.float(), dim=1) @ F.normalize(gallery_feats.float(), dim=1).t()
    kmax = min(max(topk), gallery_feats.shape[0])
    idx = sim.topk(kmax, dim=1).indices  # (Q, kmax)
    hit = gallery_labels[idx] == query_labels[:, None]
    out = {}
    for k in topk:
        kk = min(k, kmax)
        out[f'R@{k}'] = 100.0 * hit[:, :kk].any(1).float().mean().item()
    return out
