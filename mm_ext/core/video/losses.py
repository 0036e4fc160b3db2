"""Losses of video contrastive pretraining (MoCo with an intra-video negative, DSM, TBE).

* :func:`infonce_with_extra_negative` - softmax InfoNCE with a memory queue and
  one extra logit per row (DSM / BE release, Sec. 3 of both papers).
* :func:`dsm_triplet_loss` - the DSM-Triplet variant (margin 0.5, intra + inter).
* :func:`temporal_consistency_loss` - TBE's temporal consistency regulariser
  (`arXiv 2009.05769 <https://arxiv.org/abs/2009.05769>`_, camera-ready Sec. 3.3).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ['infonce_with_extra_negative', 'dsm_triplet_loss', 'temporal_consistency_loss']


def infonce_with_extra_negative(q: torch.Tensor,
                                k: torch.Tensor,
                                queue: torch.Tensor,
                                extra_neg: Optional[torch.Tensor] = None,
                                temperature: float = 0.07) -> Tuple[torch.Tensor, torch.Tensor]:
    """Softmax InfoNCE, target index 0.

    Row b of the logits is ``[q_b . k_b, q_b . Q_1, ..., q_b . Q_K, q_b . n_b] / tau``.

    Args:
        q (Tensor): queries, shape (B, D).
        k (Tensor): positive keys, shape (B, D) (treated as constants).
        queue (Tensor): K negatives, shape (K, D) (treated as constants; pass a
            clone if the caller updates it in place before backward).
        extra_neg (Tensor, optional): one extra negative per row, shape (B, D),
            kept in the graph (the intra-video clip through the query encoder).
        temperature (float): tau. Defaults to 0.07.

    Returns:
        tuple[Tensor, Tensor]: scalar loss and logits (B, 1 + K [+ 1]).
    """
    if q.shape != k.shape or q.dim() != 2:
        raise ValueError(f'infonce: q and k must both be (B, D), got {tuple(q.shape)} and '
                         f'{tuple(k.shape)}')
    if queue.dim() != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(f'infonce: queue must be (K, {q.shape[1]}), got {tuple(queue.shape)}')
    k = k.detach()
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.detach().t()
    parts = [pos, neg]
    if extra_neg is not None:
        if extra_neg.shape != q.shape:
            raise ValueError(f'infonce: extra_neg must be {tuple(q.shape)}, got '
                             f'{tuple(extra_neg.shape)}')
        parts.append((q * extra_neg).sum(1, keepdim=True))
    logits = torch.cat(parts, 1) / temperature
    target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target), logits


def dsm_triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                     margin: float = 0.5) -> torch.Tensor:
    """DSM-Triplet: ``T(a, p, n) + T(a, p, n[reversed batch])`` with Euclidean triplet terms.

    ``T(a, p, n) = mean_b max(|a_b - p_b| - |a_b - n_b| + margin, 0)``; the second
    term's negative is the intra-video negative of another sample, taken by
    reversing the batch order (inter-video negative).

    Args:
        anchor (Tensor): shape (B, D). positive (Tensor): shape (B, D).
        negative (Tensor): intra-video negatives, shape (B, D).
        margin (float): triplet margin. Defaults to 0.5.

    Returns:
        Tensor: scalar loss.
    """
    intra = F.triplet_margin_loss(anchor, positive, negative, margin=margin, p=2)
    inter = F.triplet_margin_loss(anchor, positive, torch.flip(negative, (0,)), margin=margin, p=2)
    return intra + inter


def temporal_consistency_loss(feat_a: torch.Tensor, feat_b_reversed: torch.Tensor) -> torch.Tensor:
    """``MSE(P_s(feat_a), flip_t(P_s(feat_b_reversed)))``.

    ``P_s`` averages over space; ``feat_b_reversed`` comes from the time-reversed
    clip, so flipping its pooled sequence aligns it with ``feat_a`` in time.

    Args:
        feat_a (Tensor): feature map of the forward clip, (B, C, T', H', W').
        feat_b_reversed (Tensor): feature map of the reversed clip, same shape.

    Returns:
        Tensor: scalar loss (mean over B, C, T').
    """
    if feat_a.shape != feat_b_reversed.shape or feat_a.dim() != 5:
        raise ValueError(f'temporal_consistency_loss: both maps must be (B, C, T, H, W) of the '
                         f'same shape, got {tuple(feat_a.shape)} and {tuple(feat_b_reversed.shape)}')
    pa = feat_a.mean(dim=(3, 4))
    pb = torch.flip(feat_b_reversed.mean(dim=(3, 4)), (2,))
    return F.mse_loss(pa, pb)
