"""Testing helpers of the NOH-NMS family (tests and benchmark only, not used by the ops).

- :func:`crowd_nms_reference`: a literal transcription of the algorithm in spec
  ``noh-nms.md`` section 4.2 (and the method variants of 4.3) on Python floats: one
  pick per step (linear scan, ties by lowest index), one pass over the remaining
  boxes per pick. O(N^2) Python work; it exists to check
  :func:`~mm_ext.core.nms.noh_nms` and to time against it.
- :func:`clustered_detections`: synthetic crowded detections.
"""
import math
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from ._rounds import EPS

__all__ = ['crowd_nms_reference', 'clustered_detections']


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
                        legacy_iou_offset: bool = False,
                        keep_first_pick: bool = True) -> Tuple[Tensor, Tensor]:
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
        min_score (float): drop below this after each pick (and initially when
            ``keep_first_pick`` is False). Defaults to 0.01.
        max_num (int): keep at most this many; <= 0 all. Defaults to -1.
        legacy_iou_offset (bool): "+1 in the areas" IoU. Defaults to False.
        keep_first_pick (bool): official loop order: the first pick is taken from all
            finite candidates, the ``min_score`` test only runs after a pick.
            Defaults to True.

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
                 if math.isfinite(s[j]) and all(math.isfinite(v) for v in b[j])
                 and (keep_first_pick or s[j] >= min_score)]
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


def clustered_detections(num_boxes: int, seed: int = 0, boxes_per_person: int = 10,
                         pair_ratio: float = 0.5, dtype=torch.float32,
                         device='cpu') -> Dict[str, torch.Tensor]:
    """Detections clustered around pedestrians, many of them in overlapping pairs.

    People are 1:2.5 boxes in a 1400 x 800 image (the CrowdHuman test size); ``pair_ratio`` of them get a
    partner shifted by 20-50 % of the width (the crowded case NOH-NMS targets).
    Each person gets ``boxes_per_person`` jittered detections; a detection's
    hallucinated box is its person's nearest other person (jittered), with a high
    NOH score when that neighbour overlaps, low otherwise.

    Args:
        num_boxes (int): N, number of detections.
        seed (int): RNG seed. Defaults to 0.
        boxes_per_person (int): detections per person. Defaults to 10.
        pair_ratio (float): fraction of people placed in overlapping pairs. Defaults to 0.5.
        dtype (torch.dtype): float dtype. Defaults to float32.
        device (str | torch.device): output device. Defaults to ``'cpu'``.

    Returns:
        dict[str, Tensor]: ``boxes`` (N, 4) and ``noh_boxes`` (N, 4) as (x1, y1, x2, y2),
        ``scores`` (N,) in (0.05, 1], ``noh_scores`` (N,) in [0, 1].
    """
    g = torch.Generator().manual_seed(seed)
    num_people = max(1, -(-num_boxes // boxes_per_person))
    w = 20 + 60 * torch.rand(num_people, generator=g, dtype=torch.float64)
    cx = 1400 * torch.rand(num_people, generator=g, dtype=torch.float64)
    cy = 800 * torch.rand(num_people, generator=g, dtype=torch.float64)
    paired = torch.rand(num_people, generator=g, dtype=torch.float64) < pair_ratio
    # every odd person of a pair stands next to the previous one
    for k in range(1, num_people, 2):
        if paired[k]:
            w[k] = w[k - 1] * (0.9 + 0.2 * torch.rand(1, generator=g, dtype=torch.float64).item())
            shift = (0.2 + 0.3 * torch.rand(1, generator=g, dtype=torch.float64).item()) * w[k - 1]
            cx[k] = cx[k - 1] + shift
            cy[k] = cy[k - 1] + 0.05 * w[k - 1] * torch.randn(1, generator=g, dtype=torch.float64).item()
    h = 2.5 * w
    people = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    # nearest other person by centre distance
    d = torch.cdist(torch.stack([cx, cy], 1), torch.stack([cx, cy], 1))
    d.fill_diagonal_(float('inf'))
    nearest = d.argmin(1) if num_people > 1 else torch.zeros(1, dtype=torch.long)
    cx_n = (people[nearest, 0] + people[nearest, 2]) / 2
    near_overlap = (cx - cx_n).abs() < w
    owner = torch.arange(num_boxes) // boxes_per_person
    ww, hh = w[owner], h[owner]
    jitter = 0.08 * torch.randn(num_boxes, 4, generator=g, dtype=torch.float64)
    boxes = people[owner] + jitter * torch.stack([ww, hh, ww, hh], 1)
    njit = 0.05 * torch.randn(num_boxes, 4, generator=g, dtype=torch.float64)
    noh_boxes = people[nearest[owner]] + njit * torch.stack([ww, hh, ww, hh], 1)
    scores = 0.05 + 0.95 * torch.rand(num_boxes, generator=g, dtype=torch.float64)
    base = torch.where(near_overlap[owner], torch.tensor(0.7, dtype=torch.float64),
                       torch.tensor(0.1, dtype=torch.float64))
    noh_scores = (base + 0.2 * torch.randn(num_boxes, generator=g, dtype=torch.float64)).clamp(0, 1)
    out = dict(boxes=boxes, scores=scores, noh_scores=noh_scores, noh_boxes=noh_boxes)
    return {k: v.to(dtype=dtype, device=device) for k, v in out.items()}
