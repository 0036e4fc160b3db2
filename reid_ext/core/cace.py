"""CACE-Net (Siamese-GCN) building blocks, torch only (spec reid.md §1).

- :class:`CorrespondenceGCN`: correspondence attention over the 2HW nodes of an image pair
  (learned adjacency ``A_nm = ReLU(e_n . e_m)``, ``A_nn = 0``, ``e = L2norm(W_y x)``) followed by
  the discrepancy GCN ``X' = X + W_o(L W_g X)`` with ``L = D~^-1/2 (D - A) D~^-1/2`` (stop-gradient
  normaliser) and a zero-initialised ``W_o``. The per-image projections ``W_y x`` / ``W_g x`` are
  computed once per image and gathered per pair.
- :func:`discrepancy_laplacian`: the dense operator, for tests and the attention picture.
- :func:`mixed_up_id_loss`, :func:`pairwise_batch_hard_triplet`, :func:`pair_distance_matrix`:
  the conditional-feature losses.
- :class:`NonLocalBlock` (embedded Gaussian, zero-initialised output BN) and :class:`GeM`.
- :class:`WarmupCosineLR`: linear warm-up then cosine decay, stepped per epoch.
- :func:`rescore_topk`: query-conditioned re-scoring of each query's top-k (opt-in extension).
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import LRScheduler

__all__ = ['CorrespondenceGCN', 'discrepancy_laplacian', 'all_ordered_pairs', 'sample_pairs',
           'mixed_up_id_loss', 'pair_distance_matrix', 'pairwise_batch_hard_triplet',
           'NonLocalBlock', 'GeM', 'WarmupCosineLR', 'rescore_topk']


def all_ordered_pairs(batch: int, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(i, j)`` of all B² ordered pairs (self-pairs included), row-major."""
    idx = torch.arange(batch, device=device)
    return idx.repeat_interleave(batch), idx.repeat(batch)


def sample_pairs(batch: int, max_pairs: int, device=None,
                 generator: Optional[torch.Generator] = None):
    """All ordered pairs, or ``max_pairs`` of them drawn without replacement (memory option).

    The self-pairs are always kept (they anchor the D_ii = 0 diagonal of the pairwise triplet).
    """
    pi, pj = all_ordered_pairs(batch, device)
    if max_pairs <= 0 or max_pairs >= batch * batch:
        return pi, pj
    if max_pairs < batch:
        raise ValueError(f'cace.max_pairs={max_pairs} must be 0 (all pairs) or >= the batch size '
                         f'{batch} (self-pairs are always kept)')
    off = (pi != pj).nonzero().flatten()
    pick = off[torch.randperm(off.numel(), generator=generator)[:max_pairs - batch].to(off.device)]
    keep = torch.cat([(pi == pj).nonzero().flatten(), pick.sort().values])
    return pi[keep], pj[keep]


def discrepancy_laplacian(adjacency: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Dense ``L = D~^-1/2 (D - A) D~^-1/2`` of (..., N, N) adjacencies.

    ``D = diag(sum_m A_nm)``; ``D~_nn = D_nn`` if ``D_nn > eps`` else 1, detached.
    """
    deg = adjacency.sum(-1)
    s = torch.where(deg > eps, deg, torch.ones_like(deg)).detach().rsqrt()
    lap = torch.diag_embed(deg) - adjacency
    return s.unsqueeze(-1) * lap * s.unsqueeze(-2)


class CorrespondenceGCN(nn.Module):
    """Correspondence attention + discrepancy GCN over image pairs.

    Args:
        channels (int): C of the feature maps.
        reduction (int): graph compression, ``C // reduction`` channels for W_y and W_g.
            Defaults to 16.
        eps (float): degree threshold of the normaliser. Defaults to 1e-3.
    """

    def __init__(self, channels: int, reduction: int = 16, eps: float = 1e-3):
        super().__init__()
        inner = max(1, channels // reduction)
        self.eps = eps
        self.attend = nn.Conv2d(channels, inner, 1, bias=False)   # W_y
        self.message = nn.Conv2d(channels, inner, 1, bias=False)  # W_g
        self.out = nn.Conv2d(inner, channels, 1, bias=False)      # W_o, zero-initialised
        nn.init.zeros_(self.out.weight)

    def project(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-image node embeddings ``e`` (B, HW, c) (L2-normalised) and messages ``g``."""
        e = F.normalize(self.attend(x).flatten(2).transpose(1, 2), dim=-1)
        g = self.message(x).flatten(2).transpose(1, 2)
        return e, g

    def attention(self, e: torch.Tensor, pi: torch.Tensor, pj: torch.Tensor) -> torch.Tensor:
        """(P, 2HW, 2HW) adjacency of the pairs; nodes = image i's HW nodes, then image j's."""
        ep = torch.cat([e[pi], e[pj]], dim=1)
        a = F.relu(ep @ ep.transpose(1, 2))
        return a * (1 - torch.eye(a.shape[-1], device=a.device, dtype=a.dtype))

    def forward_nodes(self, x: torch.Tensor, pi: torch.Tensor, pj: torch.Tensor,
                      return_attention: bool = False):
        """As :meth:`forward`, in node layout: ``X_{i|j}``, ``X_{j|i}`` each (P, HW, C) (row-major
        nodes), without the copies back to (P, C, H, W) (the head pools over the nodes)."""
        b, c, h, w = x.shape
        e, g = self.project(x)  # once per image
        a = self.attention(e, pi, pj)
        gp = torch.cat([g[pi], g[pj]], dim=1)  # (P, N, c)
        deg = a.sum(-1, keepdim=True)
        s = torch.where(deg > self.eps, deg, torch.ones_like(deg)).detach().rsqrt()
        sg = s * gp
        lg = s * (deg * sg - a @ sg)  # L @ g without building L
        upd = F.linear(lg, self.out.weight.flatten(1))  # (P, N, C)
        nodes = x.flatten(2).transpose(1, 2)  # (B, HW, C), once per image
        xi = nodes[pi] + upd[:, :h * w]
        xj = nodes[pj] + upd[:, h * w:]
        return (xi, xj, a) if return_attention else (xi, xj)

    def forward(self, x: torch.Tensor, pi: torch.Tensor, pj: torch.Tensor,
                return_attention: bool = False):
        """Conditional maps of the pairs ``(pi[p], pj[p])``.

        Args:
            x (Tensor): (B, C, H, W) individual feature maps.
            pi, pj (Tensor): (P,) int64 image indices of each pair.

        Returns:
            tuple: ``X_{i|j}`` and ``X_{j|i}``, each (P, C, H, W) (+ the (P, N, N) adjacency when
            ``return_attention``; N = 2HW, image i's nodes first).
        """
        b, c, h, w = x.shape
        out = self.forward_nodes(x, pi, pj, return_attention)
        maps = tuple(t.transpose(1, 2).reshape(-1, c, h, w) for t in out[:2])
        return maps + tuple(out[2:])


def mixed_up_id_loss(logits_ij: torch.Tensor, logits_ji: torch.Tensor, yi: torch.Tensor,
                     yj: torch.Tensor, alpha: float = 0.9) -> torch.Tensor:
    """Mixed-up ID loss of the conditional features, averaged over the 2P conditional embeddings.

    ``f_{i|j}``: ``alpha * CE(., y_i) + (1 - alpha) * CE(., y_j)``; ``f_{j|i}`` symmetrically.
    """
    li = F.log_softmax(logits_ij.float(), dim=1)
    lj = F.log_softmax(logits_ji.float(), dim=1)
    t_ij = -(alpha * li.gather(1, yi[:, None]) + (1 - alpha) * li.gather(1, yj[:, None]))
    t_ji = -(alpha * lj.gather(1, yj[:, None]) + (1 - alpha) * lj.gather(1, yi[:, None]))
    return 0.5 * (t_ij.mean() + t_ji.mean())


def pair_distance_matrix(f_ij: torch.Tensor, f_ji: torch.Tensor, pi: torch.Tensor,
                         pj: torch.Tensor, batch: int):
    """``D_ij = ||n(f_{i|j}) - n(f_{j|i})||_2`` scattered into (B, B) plus a validity mask."""
    d = (F.normalize(f_ij.float(), dim=1) - F.normalize(f_ji.float(), dim=1)).pow(2).sum(1)
    d = d.clamp(min=1e-12).sqrt()
    flat = pi * batch + pj
    dist = d.new_zeros(batch * batch).index_put((flat,), d).view(batch, batch)
    valid = torch.zeros(batch * batch, dtype=torch.bool, device=d.device)
    valid[flat] = True
    return dist, valid.view(batch, batch)


def pairwise_batch_hard_triplet(dist: torch.Tensor, labels: torch.Tensor, margin: float = 0.5,
                                valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Batch-hard triplet on a (B, B) distance matrix: per anchor row, hardest positive (max
    over same-label columns) vs hardest negative (min over other labels); mean of
    ``relu(d_ap - d_an + margin)`` over anchors that have both. ``valid`` masks unsampled pairs."""
    same = labels[:, None] == labels[None, :]
    if valid is None:
        valid = torch.ones_like(same)
    pos, neg = same & valid, ~same & valid
    ap = dist.masked_fill(~pos, float('-inf')).max(1).values
    an = dist.masked_fill(~neg, float('inf')).min(1).values
    ok = pos.any(1) & neg.any(1)
    if not ok.any():
        return dist.sum() * 0
    return F.relu(ap[ok] - an[ok] + margin).mean()


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block (Wang et al. 2018); the output BN starts at zero, so the
    block is an identity at initialisation."""

    def __init__(self, channels: int, reduction: int = 2):
        super().__init__()
        inner = max(1, channels // reduction)
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.w = nn.Sequential(nn.Conv2d(inner, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.w[1].weight)
        nn.init.zeros_(self.w[1].bias)

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.theta(x).flatten(2).transpose(1, 2)
        p = self.phi(x).flatten(2)
        g = self.g(x).flatten(2).transpose(1, 2)
        y = torch.softmax(t @ p, dim=-1) @ g
        return x + self.w(y.transpose(1, 2).reshape(b, -1, h, w))


class GeM(nn.Module):
    """Generalised-mean pooling ``(mean x^p)^(1/p)`` with a fixed ``p`` (3 in YouReID)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p, self.eps = p, eps

    def forward(self, x):
        return x.clamp(min=self.eps).pow(self.p).mean((2, 3)).pow(1.0 / self.p)


class WarmupCosineLR(LRScheduler):
    """Per-epoch ``lr(e) = base_lr * w(e) * 0.5 * (1 + cos(pi * e / max_epoch))``,
    ``w(e) = warmup_factor + (1 - warmup_factor) * e / warmup_epochs`` during the warm-up."""

    def __init__(self, optimizer, max_epoch: int, warmup_epochs: int = 5,
                 warmup_factor: float = 0.01, last_epoch: int = -1):
        if max_epoch < 1 or warmup_epochs < 0 or not 0 < warmup_factor <= 1:
            raise ValueError(f'need max_epoch >= 1, warmup_epochs >= 0, 0 < warmup_factor <= 1; '
                             f'got {max_epoch}, {warmup_epochs}, {warmup_factor}')
        self.max_epoch, self.warmup_epochs, self.warmup_factor = max_epoch, warmup_epochs, \
            warmup_factor
        super().__init__(optimizer, last_epoch)

    def _factor(self, e: int) -> float:
        w = 1.0
        if e < self.warmup_epochs:
            w = self.warmup_factor + (1 - self.warmup_factor) * e / self.warmup_epochs
        return w * 0.5 * (1 + math.cos(math.pi * min(e, self.max_epoch) / self.max_epoch))

    def get_lr(self):
        return [base * self._factor(self.last_epoch) for base in self.base_lrs]


def rescore_topk(distmat: torch.Tensor, pair_distance, k: int = 100, weight: float = 1.0,
                 chunk: int = 32) -> torch.Tensor:
    """Query-conditioned re-scoring of each query's top-``k`` gallery entries.

    Args:
        distmat (Tensor): (Q, G) individual-feature distances.
        pair_distance (callable): ``(q_idx (P,), g_idx (P,)) -> (P,)`` conditional distances
            ``D_qg`` (CACE-Net: ``||n(f_{q|g}) - n(f_{g|q})||``).
        k (int): entries re-scored per query.
        weight (float): new score ``weight * D_qg + (1 - weight) * distmat``. Defaults to 1.
        chunk (int): queries per ``pair_distance`` call (``chunk * k`` pairs).

    Returns:
        Tensor: (Q, G) distances: the top-k of each row carry the new scores and stay ahead of
        the rest, whose order is unchanged.
    """
    q, g = distmat.shape
    k = min(int(k), g)
    out = distmat.clone()
    if k <= 0:
        return out
    top = distmat.topk(k, dim=1, largest=False).indices  # (Q, k)
    for s in range(0, q, chunk):
        rows = torch.arange(s, min(q, s + chunk))
        cols = top[rows]
        qi = rows[:, None].expand_as(cols).reshape(-1)
        d = pair_distance(qi, cols.reshape(-1)).reshape(cols.shape).to(out.dtype)
        old = distmat[rows[:, None], cols]
        new = weight * d + (1 - weight) * old
        rest = torch.ones(len(rows), g, dtype=torch.bool)
        rest[torch.arange(len(rows))[:, None], cols] = False
        shift = new.max(1, keepdim=True).values - old.max(1, keepdim=True).values + 1e-4
        block = distmat[rows] + shift
        block[~rest] = 0
        block[torch.arange(len(rows))[:, None], cols] = new
        out[rows] = block
    return out
