"""Pseudo-label helpers of ACT's clustering step (torch only; DBSCAN itself is in
:mod:`reid_ext.cluster`, which wraps scikit-learn).

- :func:`eps_from_distances`: DBSCAN's eps = mean of the smallest ``rho`` fraction of the
  pairwise distances (strict upper triangle, exact zeros dropped, ``round(rho * count)`` values,
  as ACT's release computes it); ACT fixes it at round 0.
- :func:`radius_graph`: the pairs with distance <= eps, for a sparse precomputed DBSCAN input.
- :func:`label_outliers`: DBSCAN outliers (label -1) take the label of their nearest inlier
  (Euclidean on L2-normalised features).
- :func:`cluster_purity`: how pure the pseudo-labels are w.r.t. hidden identities.
"""
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['eps_from_distances', 'radius_graph', 'label_outliers', 'cluster_purity']

_CHUNK_ELEMS = 1 << 24


def _row_step(n: int) -> int:
    return max(1, _CHUNK_ELEMS // max(1, n))


def eps_from_distances(dist: torch.Tensor, rho: float = 1.6e-3) -> float:
    """Mean of the ``round(rho * P)`` smallest non-zero distances above the diagonal.

    Args:
        dist (Tensor): (N, N) distance matrix (only the strict upper triangle is read).
        rho (float): fraction of pairs. Defaults to 1.6e-3 (ACT's 0.16 %).

    Returns:
        float: eps.
    """
    if dist.dim() != 2 or dist.shape[0] != dist.shape[1]:
        raise ValueError(f'dist must be a square (N, N) matrix, got {tuple(dist.shape)}')
    if not 0 < rho <= 1:
        raise ValueError(f'rho must be in (0, 1], got {rho}')
    n = dist.shape[0]
    cap = int(round(rho * n * (n - 1) / 2))  # upper bound of the final count
    best = dist.new_empty(0, dtype=torch.float32)
    count = 0
    step = _row_step(n)
    cols = torch.arange(n, device=dist.device)
    for s in range(0, n, step):
        e = min(n, s + step)
        block = dist[s:e].float()
        upper = cols[None, :] > torch.arange(s, e, device=dist.device)[:, None]
        vals = block[upper & (block != 0)]
        count += vals.numel()
        if cap:
            vals = torch.cat([best, vals])
            best = torch.topk(vals, min(cap, vals.numel()), largest=False).values
    top = int(round(rho * count))
    if top < 1:
        raise ValueError(f'rho={rho} of {count} non-zero pairs selects no distance; need more '
                         f'samples (N={n}) or a larger rho')
    best = torch.sort(best).values[:top]
    return float(best.double().mean())


def radius_graph(dist: torch.Tensor, eps: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Off-diagonal pairs with ``dist <= eps`` as numpy COO arrays (rows, cols, values).

    DBSCAN with a precomputed sparse matrix of these pairs finds the same neighbourhoods as with
    the dense matrix, without a float64 (N, N) copy.
    """
    n = dist.shape[0]
    rows, cols, vals = [], [], []
    step = _row_step(n)
    for s in range(0, n, step):
        block = dist[s:s + step]
        hit = block <= eps
        hit[torch.arange(block.shape[0], device=dist.device),
            torch.arange(s, s + block.shape[0], device=dist.device)] = False
        r, c = hit.nonzero(as_tuple=True)
        rows.append((r + s).cpu().numpy())
        cols.append(c.cpu().numpy())
        vals.append(block[r, c].double().cpu().numpy())
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def label_outliers(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Give every outlier (label < 0) the label of its nearest inlier.

    Args:
        features (Tensor): (N, D) features; distances are Euclidean after L2 normalisation.
        labels (Tensor): (N,) int cluster labels, -1 = outlier.

    Returns:
        Tensor: (N,) int64 labels with no -1 left.

    Raises:
        ValueError: every sample is an outlier.
    """
    labels = torch.as_tensor(labels, device=features.device).long()
    if labels.shape != (features.shape[0],):
        raise ValueError(f'labels must be (N,) for N={features.shape[0]} features, got '
                         f'{tuple(labels.shape)}')
    out = labels.clone()
    outl = (labels < 0).nonzero(as_tuple=True)[0]
    inl = (labels >= 0).nonzero(as_tuple=True)[0]
    if outl.numel() == 0:
        return out
    if inl.numel() == 0:
        raise ValueError('every sample is an outlier: no inlier label to copy (eps too small?)')
    f = F.normalize(features.float(), dim=1)
    fi = f[inl]
    step = _row_step(inl.numel())
    for s in range(0, outl.numel(), step):
        q = outl[s:s + step]
        nearest = torch.cdist(f[q], fi).argmin(dim=1)
        out[q] = labels[inl[nearest]]
    return out


def cluster_purity(pred, truth) -> float:
    """Fraction of samples whose true identity is their cluster's majority identity.

    Samples with ``pred < 0`` are ignored. Returns NaN when none is left.
    """
    pred = np.asarray(pred.cpu() if isinstance(pred, torch.Tensor) else pred).astype(np.int64)
    truth = np.asarray(truth.cpu() if isinstance(truth, torch.Tensor) else truth).astype(np.int64)
    keep = pred >= 0
    pred, truth = pred[keep], truth[keep]
    if pred.size == 0:
        return float('nan')
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    table = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (p, t), 1)
    return float(table.max(axis=1).sum() / pred.size)
