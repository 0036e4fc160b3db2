"""Adaptive-NMS with the NOH score as density (official NOH-NMS "method 4").

`Adaptive NMS: Refining Pedestrian Detection in a Crowd
<https://arxiv.org/abs/1904.03629>`_ threshold rule ``N_M = max(Nt, d_M)``, with the
NOH score of `NOH-NMS <https://arxiv.org/abs/2007.13376>`_ as the density d
(spec ``noh-nms.md`` section 4.3); used for ablations.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._rounds import check_inputs, sequential_rescore

__all__ = ['adaptive_nms']


def adaptive_nms(boxes: Tensor,
                 scores: Tensor,
                 densities: Tensor,
                 iou_threshold: float = 0.5,
                 min_score: float = 0.01,
                 max_num: int = -1,
                 legacy_iou_offset: bool = False,
                 labels: Optional[Tensor] = None,
                 keep_first_pick: bool = True) -> Tuple[Tensor, Tensor]:
    """Greedy NMS whose threshold adapts to the picked box's density.

    The picked box M = b_i suppresses (zeroes) every remaining b_j with
    ``IoU(b_i, b_j) > max(iou_threshold, densities[i])``.

    Args:
        boxes (Tensor): (N, 4) boxes (x1, y1, x2, y2).
        scores (Tensor): (N,) scores.
        densities (Tensor): (N,) predicted densities (the NOH score p).
        iou_threshold (float): Nt. Defaults to 0.5.
        min_score (float): boxes below this score are dropped. Defaults to 0.01.
        max_num (int): keep at most this many; <= 0 keeps all. Defaults to -1.
        legacy_iou_offset (bool): official "+1 in the areas" IoU. Defaults to False.
        labels (Tensor, optional): (N,) int class ids; boxes of different classes
            never interact, all classes in one pass. Defaults to None (one class).
        keep_first_pick (bool): keep the first pick (of each class) even when it
            scores below ``min_score``, as the official loop, which drops candidates
            only after a pick. Defaults to True.

    Returns:
        tuple[Tensor, Tensor]: kept indices (K,) int64 in pick order (score
        descending, ties by lowest index) and their (unchanged) scores (K,).
        A NaN density counts as 0 (threshold Nt).
    """
    check_inputs(boxes, scores, densities=densities)
    if labels is not None:
        check_inputs(boxes, scores, labels=labels)
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device), scores.new_zeros(0)
    dens = torch.nan_to_num(densities.detach().to(boxes.dtype), nan=0.0)
    row_thr = dens.clamp(min=float(iou_threshold))

    return sequential_rescore(boxes, scores, row_thr, False, min_score=min_score, max_num=max_num,
                              legacy_iou_offset=legacy_iou_offset, labels=labels,
                              keep_first_pick=keep_first_pick)
