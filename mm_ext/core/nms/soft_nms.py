"""Soft-NMS applied only above the IoU threshold (official NOH-NMS "methods 1/2").

`Soft-NMS -- Improving Object Detection With One Line of Code
<https://arxiv.org/abs/1704.04503>`_, in the variant of the NOH-NMS code (spec
``noh-nms.md`` section 4.3): unlike ``mmcv.ops.soft_nms`` the Gaussian decay is
applied only to boxes overlapping the picked box by more than Nt.
"""
from functools import partial
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._rounds import check_inputs, sequential_rescore

__all__ = ['thresholded_soft_nms']


def thresholded_soft_nms(boxes: Tensor,
                         scores: Tensor,
                         iou_threshold: float = 0.5,
                         method: str = 'linear',
                         sigma: float = 0.5,
                         min_score: float = 0.01,
                         max_num: int = -1,
                         legacy_iou_offset: bool = False,
                         labels: Optional[Tensor] = None,
                         keep_first_pick: bool = True) -> Tuple[Tensor, Tensor]:
    """Soft-NMS whose decay acts only above ``iou_threshold``.

    The picked box b_i rescales every remaining b_j with IoU u > Nt by
    ``1 - u`` (``method='linear'``) or ``exp(-u^2 / sigma)`` (``'gaussian'``).

    Args:
        boxes (Tensor): (N, 4) boxes (x1, y1, x2, y2).
        scores (Tensor): (N,) scores.
        iou_threshold (float): Nt. Defaults to 0.5.
        method (str): ``'linear'`` or ``'gaussian'``. Defaults to ``'linear'``.
        sigma (float): Gaussian parameter (divides u^2). Defaults to 0.5.
        min_score (float): drop boxes below this score. Defaults to 0.01.
        max_num (int): keep at most this many; <= 0 keeps all. Defaults to -1.
        legacy_iou_offset (bool): official "+1 in the areas" IoU. Defaults to False.
        labels (Tensor, optional): (N,) int class ids; boxes of different classes
            never interact, all classes in one pass. Defaults to None (one class).
        keep_first_pick (bool): keep the first pick (of each class) even when it
            scores below ``min_score``, as the official loop, which drops candidates
            only after a pick. Defaults to True.

    Returns:
        tuple[Tensor, Tensor]: kept indices (K,) int64 in pick order and their
        final scores (K,).
    """
    if method not in ('linear', 'gaussian'):
        raise ValueError(f"method must be 'linear' or 'gaussian', got {method!r}")
    if method == 'gaussian' and not sigma > 0:
        raise ValueError(f'sigma must be > 0 for the Gaussian decay, got {sigma}')
    check_inputs(boxes, scores)
    if labels is not None:
        check_inputs(boxes, scores, labels=labels)
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device), scores.new_zeros(0)
    return sequential_rescore(boxes, scores, float(iou_threshold), True, partial(_soft_edges, method, sigma),
                              min_score=min_score, max_num=max_num, legacy_iou_offset=legacy_iou_offset,
                              labels=labels, keep_first_pick=keep_first_pick)


def _soft_edges(method, sigma, ops, extras, src, dst, iou):
    """Soft-NMS decay of each picked box on a candidate: (E,) factors (every box rescales)."""
    return 1.0 - iou if method == 'linear' else ops.xp.exp(-(iou * iou) / sigma)
