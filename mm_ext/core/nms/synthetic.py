"""Synthetic crowded detections for tests and benchmarks (torch only)."""
from typing import Dict

import torch

__all__ = ['clustered_detections']


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
