"""Nearest-neighbour evaluation: retrieval Recall@k (test clips against train clips, cosine) and k-NN."""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

__all__ = ['retrieval_recall', 'knn_classify']


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


def knn_classify(query_feats: torch.Tensor, gallery_feats: torch.Tensor,
                 gallery_labels: torch.Tensor, k: int = 20, temperature: float = 0.07,
                 num_classes: Optional[int] = None) -> torch.Tensor:
    """Weighted k-nearest-neighbour class scores (cosine similarity, weights exp(s / tau)).

    The instance-discrimination k-NN protocol (Wu et al., CVPR 2018,
    `arXiv 1805.01978 <https://arxiv.org/abs/1805.01978>`_): each of the k most
    similar gallery items votes for its label with weight ``exp(s / tau)``.

    Args:
        query_feats (Tensor): (Q, D). gallery_feats (Tensor): (G, D).
        gallery_labels (Tensor): (G,) int labels in [0, num_classes).
        k (int): neighbours (clipped to G). Defaults to 20.
        temperature (float): tau. Defaults to 0.07.
        num_classes (int, optional): defaults to ``max(label) + 1``.

    Returns:
        Tensor: (Q, num_classes) summed vote weights; ``argmax(1)`` is the prediction.
    """
    if query_feats.dim() != 2 or gallery_feats.dim() != 2 or \
            query_feats.shape[1] != gallery_feats.shape[1]:
        raise ValueError(f'knn_classify: features must be (Q, D) and (G, D), got '
                         f'{tuple(query_feats.shape)} and {tuple(gallery_feats.shape)}')
    if k < 1 or temperature <= 0:
        raise ValueError(f'knn_classify: need k >= 1 and temperature > 0, got {k}, {temperature}')
    c = int(num_classes) if num_classes is not None else int(gallery_labels.max()) + 1
    sim = F.normalize(query_feats.float(), dim=1) @ F.normalize(gallery_feats.float(), dim=1).t()
    top = sim.topk(min(k, gallery_feats.shape[0]), dim=1)
    votes = torch.zeros(query_feats.shape[0], c, device=sim.device)
    votes.scatter_add_(1, gallery_labels.to(sim.device)[top.indices], (top.values / temperature).exp())
    return votes
