"""Per-class dispatch over the crowd NMS family (greedy / soft / adaptive / NOH)."""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .adaptive_nms import adaptive_nms
from .noh_nms import noh_nms
from .soft_nms import thresholded_soft_nms

__all__ = ['batched_crowd_nms', 'CROWD_NMS_METHODS']

#: accepted ``method`` names (aliases: ``'nms'`` = greedy, ``'noh_nms'`` = noh)
CROWD_NMS_METHODS = ('greedy', 'soft', 'adaptive', 'noh')
_ALIASES = {'nms': 'greedy', 'noh_nms': 'noh'}


def batched_crowd_nms(boxes: Tensor,
                      scores: Tensor,
                      labels: Tensor,
                      noh_scores: Optional[Tensor] = None,
                      noh_boxes: Optional[Tensor] = None,
                      method: str = 'noh',
                      iou_threshold: float = 0.5,
                      max_num: int = -1,
                      min_score: float = 0.01,
                      noh_score_thr: float = 0.3,
                      sigma: float = 0.2,
                      flag_thr: float = 0.6,
                      soft_method: str = 'linear',
                      soft_sigma: float = 0.5,
                      legacy_iou_offset: bool = False) -> Tuple[Tensor, Tensor]:
    """Run one NMS variant independently per class and merge the survivors.

    Args:
        boxes (Tensor): (N, 4) boxes (x1, y1, x2, y2).
        scores (Tensor): (N,) scores.
        labels (Tensor): (N,) int class of each box; boxes of different classes never
            interact.
        noh_scores (Tensor, optional): (N,) NOH scores p (``'noh'``; the density of
            ``'adaptive'``). Required for those two methods.
        noh_boxes (Tensor, optional): (N, 4) hallucinated boxes (``'noh'``).
        method (str): one of :data:`CROWD_NMS_METHODS` (official NOH-NMS methods 0,
            1/2, 4 and NOH). Defaults to ``'noh'``.
        iou_threshold (float): Nt. Defaults to 0.5.
        max_num (int): keep at most this many over all classes; <= 0 keeps all.
            Defaults to -1.
        min_score (float): drop boxes whose (decayed) score is below. Defaults to 0.01.
        noh_score_thr, sigma, flag_thr: NOH constants, see
            :func:`~mm_ext.core.nms.noh_nms`. Default to 0.3, 0.2, 0.6.
        soft_method (str): ``'linear'`` or ``'gaussian'`` for ``'soft'``. Defaults to ``'linear'``.
        soft_sigma (float): Gaussian Soft-NMS parameter. Defaults to 0.5.
        legacy_iou_offset (bool): official "+1 in the areas" IoU. Defaults to False.

    Returns:
        tuple[Tensor, Tensor]: kept indices (K,) int64 and final scores (K,), sorted by
        final score (descending, ties by lowest index).
    """
    method = _ALIASES.get(method, method)
    if method not in CROWD_NMS_METHODS:
        raise ValueError(f'unknown NMS method {method!r}; use one of {CROWD_NMS_METHODS} '
                         "(aliases 'nms', 'noh_nms')")
    if method in ('noh', 'adaptive') and noh_scores is None:
        raise ValueError(f"method {method!r} needs noh_scores (the NOH head's output); "
                         "use method='greedy' for a detector without the NOH branch")
    keeps, finals = [], []
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero().squeeze(1)
        b, s = boxes[idx], scores[idx]
        common = dict(min_score=min_score, legacy_iou_offset=legacy_iou_offset)
        if method == 'greedy':
            k, f = noh_nms(b, s, None, None, iou_threshold=iou_threshold, **common)
        elif method == 'noh':
            k, f = noh_nms(b, s, noh_scores[idx], noh_boxes[idx], iou_threshold=iou_threshold,
                           noh_score_thr=noh_score_thr, sigma=sigma, flag_thr=flag_thr, **common)
        elif method == 'adaptive':
            k, f = adaptive_nms(b, s, noh_scores[idx], iou_threshold=iou_threshold, **common)
        else:
            k, f = thresholded_soft_nms(b, s, iou_threshold=iou_threshold, method=soft_method,
                                        sigma=soft_sigma, **common)
        keeps.append(idx[k])
        finals.append(f)
    if not keeps:
        return torch.zeros(0, dtype=torch.long, device=boxes.device), scores.new_zeros(0)
    keep, final = torch.cat(keeps), torch.cat(finals)
    by_idx = torch.sort(keep).indices
    keep, final = keep[by_idx], final[by_idx]
    order = torch.sort(final, descending=True, stable=True).indices
    keep, final = keep[order], final[order]
    if max_num is not None and max_num > 0:
        keep, final = keep[:max_num], final[:max_num]
    return keep, final
