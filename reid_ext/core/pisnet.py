"""PISNet building blocks (spec ``reid.md`` §2.2-2.3), framework-free (torch only).

* :class:`QueryGuidedAttention` (QGAB): per-position weights on a *target* map from a *guide*
  map, non-local style: ``a(p) = max_q (theta(T)_p . phi(G)_q) / N_q``, unbounded (no softmax
  or sigmoid), ``out = T * a + T``. QGAB: target = gallery map, guide = query map. GRAM: target
  = the corrupted multi-person query, guide = the query-guided gallery map (roles reversed).
  ``pyramid``: ``'none'`` (all guide positions), ``'s2'`` (2x2 max-pooled guide, the scripts'
  setting) or ``'yes'`` (both scales concatenated).
* :func:`corrupt_query`: the release's corruption ``[F_q1 || stopgrad(F_q2)]`` along the width.
* :func:`mps_loss`: multi-person separation loss
  ``max(0, d(f_G|q1, f_q1) - d(f_G|q1, sg(f_G|q2)) + m)``, Euclidean on pooled features.
* :func:`pisnet_loss`: ``[CE + Tri](main) + gamma * MPS + beta * [CE(GRAM) + Tri(main)]``.
"""
from typing import Callable, Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['QueryGuidedAttention', 'corrupt_query', 'mps_loss', 'pisnet_loss']


class QueryGuidedAttention(nn.Module):
    """Guide-conditioned attention over a target map (QGAB / GRAM), see the module docstring.

    Args:
        in_channels (int): channels of both maps (2048 for ResNet-50).
        inter_channels (int): theta/phi channels (1024 in the paper); default in_channels // 2.
        pyramid (str): ``'none' | 's2' | 'yes'``.
    """

    def __init__(self, in_channels: int, inter_channels: int = None, pyramid: str = 's2'):
        super().__init__()
        if pyramid not in ('none', 's2', 'yes'):
            raise ValueError(f"pyramid must be 'none', 's2' or 'yes', got {pyramid!r}")
        inter = inter_channels or max(1, in_channels // 2)
        self.pyramid = pyramid
        self.theta = nn.Conv2d(in_channels, inter, 1)
        self.phi = nn.Conv2d(in_channels, inter, 1)

    def guide_keys(self, guide: torch.Tensor) -> torch.Tensor:
        """(B, I, N_g) keys of the guide map (pooled per ``pyramid``)."""
        p = self.phi(guide)
        if self.pyramid == 'none':
            return p.flatten(2)
        pooled = F.max_pool2d(p, 2, ceil_mode=True).flatten(2)
        return pooled if self.pyramid == 's2' else torch.cat([p.flatten(2), pooled], 2)

    def weights(self, target: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) unbounded attention weights over the target positions."""
        b, _, h, w = target.shape
        t = self.theta(target).flatten(2)                       # (B, I, N_t)
        k = self.guide_keys(guide)                              # (B, I, N_g)
        s = torch.bmm(t.transpose(1, 2), k) / k.shape[2]        # (B, N_t, N_g)
        return s.max(dim=2).values.view(b, 1, h, w)

    def forward(self, target: torch.Tensor, guide: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(target * a + target, a)."""
        a = self.weights(target, guide)
        return target * a + target, a


def corrupt_query(fq1: torch.Tensor, fq2: torch.Tensor) -> torch.Tensor:
    """``[F_q1 || stopgrad(F_q2)]`` concatenated along the width (spec decision 5)."""
    return torch.cat([fq1, fq2.detach()], dim=3)


def mps_loss(f_gq1: torch.Tensor, f_q1: torch.Tensor, f_gq2: torch.Tensor, margin: float) -> torch.Tensor:
    """Multi-person separation loss (mean over the batch); ``f_gq2`` is detached."""
    d_pos = (f_gq1 - f_q1).pow(2).sum(1).clamp_min(1e-12).sqrt()
    d_neg = (f_gq1 - f_gq2.detach()).pow(2).sum(1).clamp_min(1e-12).sqrt()
    return F.relu(d_pos - d_neg + margin).mean()


def pisnet_loss(out: Dict[str, torch.Tensor], pids: torch.Tensor, ce: Callable, tri: Callable,
                gamma: float = 1.0, beta: float = 0.5, margin: float = 0.1
                ) -> Tuple[torch.Tensor, Dict[str, float]]:
    """The PISNet objective from a model output dict (keys ``logits``, ``feat``, ``q1_feat``,
    ``gq2_feat``, ``gram_logits``); ``ce(logits, pids)`` and ``tri(feat, pids)`` are the ID and
    triplet criteria (triplet margin = ``margin`` in the release)."""
    l_ce, l_tri = ce(out['logits'], pids), tri(out['feat'], pids)
    l_mps = mps_loss(out['feat'], out['q1_feat'], out['gq2_feat'], margin)
    l_gram = ce(out['gram_logits'], pids)
    loss = l_ce + l_tri + gamma * l_mps + beta * (l_gram + l_tri)
    return loss, dict(loss_ce=l_ce.item(), loss_tri=l_tri.item(), loss_mps=l_mps.item(),
                      loss_gram=l_gram.item())
