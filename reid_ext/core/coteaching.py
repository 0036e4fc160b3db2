"""Losses and sample selection of ACT's asymmetric co-teaching (torch only).

- :func:`batch_hard_triplet_per_sample`: batch-hard triplet loss per anchor (the mean is
  torchreid's ``TripletLoss``), so that samples can be ranked by loss.
- :func:`remember_rate`: R_t = start + (end - start) (t + 1) / T; ACT: 0.2 + 0.08 (t + 1), which
  reaches 1.0 in the last of T = 10 rounds.
- :func:`small_loss_indices`: the ``num_remember(B, R_t)`` samples with the smallest loss.
"""
import math

import torch

__all__ = ['batch_hard_triplet_per_sample', 'remember_rate', 'num_remember',
           'small_loss_indices']


def batch_hard_triplet_per_sample(feats: torch.Tensor, labels: torch.Tensor,
                                  margin: float = 0.5) -> torch.Tensor:
    """``max(0, max_pos d(a, p) - min_neg d(a, n) + margin)`` for every anchor a.

    Distances are Euclidean, computed like torchreid's ``TripletLoss``
    (``sqrt(clamp(|a|² + |b|² - 2 a.b, 1e-12))``); the anchor itself counts as a positive.
    An anchor without a negative in the batch gets loss 0.

    Args:
        feats (Tensor): (B, D) features.
        labels (Tensor): (B,) labels.
        margin (float): Defaults to 0.5 (ACT).

    Returns:
        Tensor: (B,) losses (differentiable w.r.t. ``feats``).
    """
    if feats.dim() != 2 or labels.shape != (feats.shape[0],):
        raise ValueError(f'need feats (B, D) and labels (B,), got {tuple(feats.shape)} and '
                         f'{tuple(labels.shape)}')
    sq = feats.pow(2).sum(dim=1, keepdim=True)
    dist = torch.addmm(sq + sq.t(), feats, feats.t(), beta=1.0, alpha=-2.0)
    dist = dist.clamp(min=1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    d_ap = dist.masked_fill(~same, float('-inf')).amax(dim=1)
    d_an = dist.masked_fill(same, float('inf')).amin(dim=1)
    return torch.relu(d_ap - d_an + margin)


def remember_rate(round_idx: int, num_rounds: int = 10, start: float = 0.2,
                  end: float = 1.0) -> float:
    """R_t of round ``round_idx`` (0-based): linear from ``start`` to ``end`` at the last round."""
    if num_rounds < 1 or not 0 <= round_idx < num_rounds:
        raise ValueError(f'need 0 <= round_idx < num_rounds, got {round_idx} of {num_rounds}')
    return start + (end - start) * (round_idx + 1) / num_rounds


def num_remember(batch_size: int, rate: float) -> int:
    """``floor(rate * batch_size)`` (with a 1e-9 guard against 0.36 * 25 = 8.999...), >= 1."""
    if not 0 < rate <= 1:
        raise ValueError(f'remember rate must be in (0, 1], got {rate}')
    return max(1, min(batch_size, math.floor(rate * batch_size + 1e-9)))


def small_loss_indices(losses: torch.Tensor, rate: float) -> torch.Tensor:
    """Indices of the ``num_remember(B, rate)`` smallest losses, smallest first (stable on ties)."""
    if losses.dim() != 1:
        raise ValueError(f'losses must be (B,), got {tuple(losses.shape)}')
    k = num_remember(losses.shape[0], rate)
    return torch.argsort(losses.detach(), stable=True)[:k]
