"""Straightforward per-box reference loop of the NOH-NMS family (tests and benchmark).

A literal transcription of the algorithm in spec ``noh-nms.md`` section 4.2 (and
the method variants of 4.3) on Python floats: one pick per step (linear scan,
ties by lowest index), one pass over the remaining boxes per pick. O(N^2) Python
work; it exists to check :func:`~mm_ext.core.nms.noh_nms` and to time against it.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._rounds import EPS

__all__ = ['crowd_nms_reference']


def _iou(a, b, off):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0] + off) * (a[3] - a[1] + off) + (b[2] - b[0] + off) * (b[3] - b[1] + off) - inter
    return inter / union if union > 0 else 0.0


def _enc(b, x):
    bw, bh = max(b[2] - b[0], EPS), max(b[3] - b[1], EPS)
    xw, xh = max(x[2] - x[0], EPS), max(x[3] - x[1], EPS)
    return ((x[0] - b[0]) / bw, (x[1] - b[1]) / bh, math.log(xw / bw), math.log(xh / bh))


def crowd_nms_reference(boxes: Tensor,
                        scores: Tensor,
                        noh_scores: Optional[Tensor] = None,
                        noh_boxes: Optional[Tensor] = None,
                        method: str = 'noh',
                        iou_threshold: float = 0.5,
                        noh_score_thr: float = 0.3,
                        sigma: float = 0.2,
                        flag_thr: float = 0.6,
                        soft_sigma: float = 0.5,
                        min_score: float = 0.01,
                        max_num: int = -1,
                        legacy_iou_offset: bool = False) -> Tuple[Tensor, Tensor]:
    """Per-box loop for ``method`` in ``'greedy'``, ``'noh'``, ``'adaptive'``,
    ``'soft_linear'``, ``'soft_gaussian'``.

    Args:
        boxes (Tensor): (N, 4) boxes (x1, y1, x2, y2).
        scores (Tensor): (N,) scores.
        noh_scores (Tensor, optional): (N,) NOH scores p (``'noh'``; the density of
            ``'adaptive'``).
        noh_boxes (Tensor, optional): (N, 4) hallucinated boxes (``'noh'``).
        method (str): the variant. Defaults to ``'noh'``.
        iou_threshold (float): Nt. Defaults to 0.5.
        noh_score_thr (float): NOH active when p > this. Defaults to 0.3.
        sigma (float): NOH Gaussian std. Defaults to 0.2.
        flag_thr (float): flag when w >= this. Defaults to 0.6.
        soft_sigma (float): Soft-NMS Gaussian parameter. Defaults to 0.5.
        min_score (float): drop below this (also initially). Defaults to 0.01.
        max_num (int): keep at most this many; <= 0 all. Defaults to -1.
        legacy_iou_offset (bool): "+1 in the areas" IoU. Defaults to False.

    Returns:
        tuple[Tensor, Tensor]: kept indices (K,) int64 in pick order and final scores (K,).
    """
    off = 1.0 if legacy_iou_offset else 0.0
    b = boxes.double().tolist()
    s = scores.double().tolist()
    n = len(b)
    p = noh_scores.double().tolist() if noh_scores is not None else [0.0] * n
    o = noh_boxes.double().tolist() if noh_boxes is not None else b
    flag = [False] * n
    remaining = [j for j in range(n)
                 if math.isfinite(s[j]) and all(math.isfinite(v) for v in b[j]) and s[j] >= min_score]
    keep, final = [], []
    while remaining:
        i = remaining[0]
        for j in remaining[1:]:
            if s[j] > s[i] or (s[j] == s[i] and j < i):
                i = j
        remaining.remove(i)
        keep.append(i)
        final.append(s[i])
        noh_on = (method == 'noh' and p[i] > noh_score_thr and not flag[i]
                  and all(math.isfinite(v) for v in o[i]))
        if noh_on:
            d_hat = _enc(b[i], o[i])
        thr = max(iou_threshold, p[i]) if method == 'adaptive' else iou_threshold
        if method == 'adaptive' and math.isnan(p[i]):
            thr = iou_threshold
        survivors = []
        for j in remaining:
            u = _iou(b[i], b[j], off)
            if u > thr:
                if noh_on:
                    d = _enc(b[i], b[j])
                    dist2 = sum((d[k] - d_hat[k]) ** 2 for k in range(4))
                    w = math.exp(-dist2 / (2 * sigma * sigma))
                    s[j] *= w
                    if w >= flag_thr:
                        flag[j] = True
                elif method == 'soft_linear':
                    s[j] *= 1.0 - u
                elif method == 'soft_gaussian':
                    s[j] *= math.exp(-u * u / soft_sigma)
                else:
                    s[j] = 0.0
            if s[j] >= min_score:
                survivors.append(j)
        remaining = survivors
    if max_num is not None and max_num > 0:
        keep, final = keep[:max_num], final[:max_num]
    return (torch.tensor(keep, dtype=torch.long, device=boxes.device),
            torch.tensor(final, dtype=scores.dtype, device=boxes.device))
