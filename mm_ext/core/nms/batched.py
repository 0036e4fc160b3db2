"""One call for all classes over the crowd NMS family (greedy / soft / adaptive / NOH)."""
from typing import Optional, Tuple

from torch import Tensor

from .adaptive_nms import adaptive_nms
from .noh_nms import noh_nms
from .soft_nms import thresholded_soft_nms

__all__ = ['batched_crowd_nms', 'CROWD_NMS_METHODS']

#: accepted ``method`` names (official NOH-NMS methods 0, NOH, 4, 1 and 2)
CROWD_NMS_METHODS = ('greedy', 'noh', 'adaptive', 'soft_linear', 'soft_gaussian')


def batched_crowd_nms(boxes: Tensor,
                      scores: Tensor,
                      labels: Optional[Tensor] = None,
                      noh_scores: Optional[Tensor] = None,
                      noh_boxes: Optional[Tensor] = None,
                      method: str = 'noh',
                      iou_threshold: float = 0.5,
                      max_num: int = -1,
                      min_score: float = 0.01,
                      noh_score_thr: float = 0.3,
                      sigma: float = 0.2,
                      flag_thr: float = 0.6,
                      soft_sigma: float = 0.5,
                      legacy_iou_offset: bool = False,
                      keep_first_pick: bool = True) -> Tuple[Tensor, Tensor]:
    """Run one NMS variant on all classes at once (classes never interact).

    The classes share one pair sweep and one round loop (no per-class loop):
    boxes of different labels are simply never paired.

    Args:
        boxes (Tensor): (N, 4) boxes (x1, y1, x2, y2).
        scores (Tensor): (N,) scores.
        labels (Tensor, optional): (N,) int class of each box; None treats all
            boxes as one class (class-agnostic NMS). Defaults to None.
        noh_scores (Tensor, optional): (N,) NOH scores p (``'noh'``; the density of
            ``'adaptive'``). Required for those two methods.
        noh_boxes (Tensor, optional): (N, 4) hallucinated boxes (``'noh'``).
        method (str): one of :data:`CROWD_NMS_METHODS`. Defaults to ``'noh'``.
        iou_threshold (float): Nt. Defaults to 0.5.
        max_num (int): keep at most this many over all classes; <= 0 keeps all.
            Defaults to -1.
        min_score (float): drop boxes whose (decayed) score is below. Defaults to 0.01.
        noh_score_thr, sigma, flag_thr: NOH constants, see
            :func:`~mm_ext.core.nms.noh_nms`. Default to 0.3, 0.2, 0.6.
        soft_sigma (float): Gaussian Soft-NMS parameter. Defaults to 0.5.
        legacy_iou_offset (bool): official "+1 in the areas" IoU. Defaults to False.
        keep_first_pick (bool): keep each class's first pick even below ``min_score``
            (official loop). Defaults to True.

    Returns:
        tuple[Tensor, Tensor]: kept indices (K,) int64 and final scores (K,), sorted by
        final score (descending, ties by lowest index).
    """
    if method not in CROWD_NMS_METHODS:
        raise ValueError(f'unknown crowd NMS method {method!r}; use one of {CROWD_NMS_METHODS}')
    if method in ('noh', 'adaptive') and noh_scores is None:
        raise ValueError(f"method {method!r} needs noh_scores (the NOH head's output); "
                         "use method='greedy' for a detector without the NOH branch")
    common = dict(min_score=min_score, max_num=max_num, legacy_iou_offset=legacy_iou_offset, labels=labels,
                  keep_first_pick=keep_first_pick)
    if method == 'greedy':
        return noh_nms(boxes, scores, None, None, iou_threshold=iou_threshold, **common)
    if method == 'noh':
        return noh_nms(boxes, scores, noh_scores, noh_boxes, iou_threshold=iou_threshold,
                       noh_score_thr=noh_score_thr, sigma=sigma, flag_thr=flag_thr, **common)
    if method == 'adaptive':
        return adaptive_nms(boxes, scores, noh_scores, iou_threshold=iou_threshold, **common)
    return thresholded_soft_nms(boxes, scores, iou_threshold=iou_threshold, method=method[5:], sigma=soft_sigma,
                                **common)
