"""NOH-NMS: NMS eased by a hallucinated nearby object.

`NOH-NMS: Improving Pedestrian Detection by Nearby Objects Hallucination
<https://arxiv.org/abs/2007.13376>`_ (ACM MM 2020); semantics as in the
project spec ``noh-nms.md`` section 4.2.
"""
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from ._rounds import EPS, check_inputs, sequential_rescore, sequential_rescore_numpy, use_numpy

__all__ = ['noh_nms']


def noh_nms(boxes: Tensor,
            scores: Tensor,
            noh_scores: Optional[Tensor],
            noh_boxes: Optional[Tensor],
            iou_threshold: float = 0.5,
            noh_score_thr: float = 0.3,
            sigma: float = 0.2,
            flag_thr: float = 0.6,
            min_score: float = 0.01,
            max_num: int = -1,
            legacy_iou_offset: bool = False) -> Tuple[Tensor, Tensor]:
    """Nearby-Objects-Hallucination NMS (single class).

    Repeatedly pick the remaining box M = b_i with the highest current score.
    Every remaining box b_j with IoU(b_i, b_j) > ``iou_threshold`` is

    * rescaled, if M's NOH is active (``p_i > noh_score_thr``) and M was not itself
      flagged, by the unnormalised Gaussian
      ``w = exp(-||enc(b_i, b_j) - enc(b_i, o_i)||^2 / (2 sigma^2))``;
      ``w >= flag_thr`` flags b_j as "the hallucinated neighbour of M" (a flagged
      box only suppresses greedily when it is picked, which prevents chains);
    * otherwise zeroed (greedy suppression).

    Boxes whose score falls below ``min_score`` are dropped. The encoding is taken
    relative to M, with top-left-corner offsets and no weights:
    ``enc(b, x) = ((x.x1 - b.x1) / b.w, (x.y1 - b.y1) / b.h, ln(x.w / b.w), ln(x.h / b.h))``.

    Args:
        boxes (Tensor): (N, 4) detections (x1, y1, x2, y2), float, any device.
        scores (Tensor): (N,) detection scores.
        noh_scores (Tensor | None): (N,) NOH (nearby-existence) probabilities p.
            None disables the NOH (plain greedy NMS).
        noh_boxes (Tensor | None): (N, 4) hallucinated nearby boxes o (x1, y1, x2, y2).
        iou_threshold (float): Nt. Defaults to 0.5.
        noh_score_thr (float): NOH active when p > this. Defaults to 0.3.
        sigma (float): isotropic Gaussian std in the encoding space. Defaults to 0.2.
        flag_thr (float): w >= this flags the candidate. Defaults to 0.6.
        min_score (float): drop candidates below this score (also initially).
            Defaults to 0.01.
        max_num (int): keep at most this many; <= 0 keeps all. Defaults to -1.
        legacy_iou_offset (bool): official "+1 in the areas" IoU. Defaults to False.

    Returns:
        tuple[Tensor, Tensor]:

        - keep (Tensor): (K,) int64 indices of the kept boxes, in pick order
          (final score descending, ties broken by the lowest index).
        - scores (Tensor): (K,) their final (possibly decayed) scores.

    Note:
        Degenerate boxes (zero/negative width or height) are guarded: widths and
        heights are floored at 1e-6 in the encoding and an empty union means IoU 0.
        A box with a NaN/inf score or coordinate is never kept; a NaN/inf NOH score
        or hallucinated box disables that box's NOH (it then suppresses greedily).
        Equals greedy NMS (``mmcv.ops.nms``) when no ``p`` exceeds ``noh_score_thr``.
        Boxes scoring below ``min_score`` from the start are dropped too. Vectorised
        (see :mod:`mm_ext.core.nms._rounds`): CUDA tensors stay on the device, CPU
        float tensors run on numpy; the outputs are on the input device.
    """
    if (noh_scores is None) != (noh_boxes is None):
        raise ValueError('noh_scores and noh_boxes must be given together (or both None '
                         'for plain greedy NMS)')
    check_inputs(boxes, scores, noh_scores=noh_scores, noh_boxes=noh_boxes)
    if not sigma > 0:
        raise ValueError(f'sigma must be > 0 (Gaussian std of the NOH offset), got {sigma}')
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device), scores.new_zeros(0)
    boxes = boxes.float() if not boxes.is_floating_point() else boxes
    noh_boxes = boxes if noh_scores is None else noh_boxes.to(boxes.dtype)
    inv_two_var = 1.0 / (2.0 * sigma * sigma)
    if use_numpy(boxes, scores):  # CPU: the whole op on numpy arrays (lower per-op overhead)
        b, o = boxes.numpy(), noh_boxes.numpy()
        if noh_scores is None:
            active = np.zeros(n, dtype=bool)
        else:
            with np.errstate(invalid='ignore'):
                active = (noh_scores.numpy() > noh_score_thr) & np.isfinite(o).all(1)
        edge_fn = _edge_fn(_box_terms(b, o, np), lambda a, i: a.take(i), np.exp, inv_two_var, flag_thr)
        keep, final = sequential_rescore_numpy(b, scores.numpy(), np.full(n, iou_threshold, dtype=b.dtype),
                                               active, edge_fn, min_score, max_num, legacy_iou_offset)
        return torch.from_numpy(keep), torch.from_numpy(final)
    if noh_scores is None:
        active = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    else:
        active = (noh_scores > noh_score_thr) & torch.isfinite(noh_boxes).all(1)
    edge_fn = _edge_fn(_box_terms(boxes, noh_boxes, torch), lambda a, i: a.index_select(0, i), torch.exp,
                       inv_two_var, flag_thr)
    row_thr = torch.full((n,), float(iou_threshold), dtype=boxes.dtype, device=boxes.device)
    return sequential_rescore(boxes, scores, row_thr, active, edge_fn, min_score=min_score,
                              max_num=max_num, legacy_iou_offset=legacy_iou_offset)


def _box_terms(b, o, xp):
    """Per-box terms of the NOH offset, for torch or numpy (N, 4) boxes ``b`` and hallucinated ``o``.

    The offset of candidate j from the hallucinated box of the picked box i, in i's frame, is
    enc(b_i, b_j) - enc(b_i, o_i) = ((x1_j - ox1_i) / w_i, (y1_j - oy1_i) / h_i,
    ln w_j - ln ow_i, ln h_j - ln oh_i); widths/heights are floored at ``EPS``.
    """
    floor = (lambda x: x.clamp(min=EPS)) if xp is torch else (lambda x: np.maximum(x, EPS))
    w, h = floor(b[:, 2] - b[:, 0]), floor(b[:, 3] - b[:, 1])
    contiguous = (lambda x: x.contiguous()) if xp is torch else np.ascontiguousarray
    return dict(x1=contiguous(b[:, 0]), y1=contiguous(b[:, 1]), ox1=contiguous(o[:, 0]), oy1=contiguous(o[:, 1]),
                inv_w=1.0 / w, inv_h=1.0 / h, log_w=xp.log(w), log_h=xp.log(h),
                o_log_w=xp.log(floor(o[:, 2] - o[:, 0])), o_log_h=xp.log(floor(o[:, 3] - o[:, 1])))


def _edge_fn(t, take, exp, inv_two_var, flag_thr):
    """``edge_fn`` of :func:`sequential_rescore`: Gaussian weights (and flags) both ways per pair."""

    def weight(src, dst):
        dx = (take(t['x1'], dst) - take(t['ox1'], src)) * take(t['inv_w'], src)
        dy = (take(t['y1'], dst) - take(t['oy1'], src)) * take(t['inv_h'], src)
        dw = take(t['log_w'], dst) - take(t['o_log_w'], src)
        dh = take(t['log_h'], dst) - take(t['o_log_h'], src)
        return exp(-(dx * dx + dy * dy + dw * dw + dh * dh) * inv_two_var)

    def edge_fn(u, v, iou):
        w_uv, w_vu = weight(u, v), weight(v, u)
        return w_uv, w_vu, w_uv >= flag_thr, w_vu >= flag_thr

    return edge_fn
