"""NOH-NMS: NMS eased by a hallucinated nearby object.

`NOH-NMS: Improving Pedestrian Detection by Nearby Objects Hallucination
<https://arxiv.org/abs/2007.13376>`_ (ACM MM 2020); semantics as in the
project spec ``noh-nms.md`` section 4.2.
"""
from functools import partial
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from . import _ckernel
from ._rounds import EPS, _initial_alive, _NumpyOps, check_inputs, sequential_rescore, use_numpy

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
            legacy_iou_offset: bool = False,
            labels: Optional[Tensor] = None,
            keep_first_pick: bool = True) -> Tuple[Tensor, Tensor]:
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
        min_score (float): drop candidates whose score falls below this (initially
            too, except the first pick, see ``keep_first_pick``). Defaults to 0.01.
        max_num (int): keep at most this many; <= 0 keeps all. Defaults to -1.
        legacy_iou_offset (bool): official "+1 in the areas" IoU. Defaults to False.
        labels (Tensor, optional): (N,) int class ids; boxes of different classes
            never interact, all classes in one pass. Defaults to None (one class).
        keep_first_pick (bool): keep the first pick (of each class) even when it
            scores below ``min_score``, as the official loop, which drops candidates
            only after a pick. Defaults to True.

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
        Boxes scoring below ``min_score`` from the start are dropped, except the
        first pick (``keep_first_pick``; irrelevant after a score filter above
        ``min_score``, e.g. mmdet's ``score_thr`` 0.05). Tensors that require grad
        are accepted (the op is not differentiable; it reads detached values).
        CPU float32/float64 inputs (boxes and scores of one dtype) run a compiled
        sequential kernel (:mod:`mm_ext.core.nms._ckernel`, built with the system C
        compiler on first use; ``MM_EXT_NMS_KERNEL=0`` turns it off); otherwise, or when
        it cannot be built, the vectorised rounds of :mod:`mm_ext.core.nms._rounds` run
        (numpy on the CPU; CUDA tensors stay on the device). Both give the same kept
        boxes; the outputs are on the input device.
    """
    if (noh_scores is None) != (noh_boxes is None):
        raise ValueError('noh_scores and noh_boxes must be given together (or both None '
                         'for plain greedy NMS)')
    check_inputs(boxes, scores, noh_scores=noh_scores, noh_boxes=noh_boxes)
    if labels is not None:
        check_inputs(boxes, scores, labels=labels)
    if not sigma > 0:
        raise ValueError(f'sigma must be > 0 (Gaussian std of the NOH offset), got {sigma}')
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device), scores.new_zeros(0)
    boxes = boxes if boxes.is_floating_point() else boxes.float()
    noh = () if noh_scores is None else (noh_scores, noh_boxes)
    if (_ckernel.enabled() and boxes.dtype == scores.dtype and n < 2**31 - 1
            and use_numpy(boxes, scores, *noh)):
        out = _noh_nms_kernel(boxes, scores, noh_scores, noh_boxes, float(iou_threshold), noh_score_thr,
                              1.0 / (2.0 * sigma * sigma), flag_thr, min_score, max_num, legacy_iou_offset,
                              labels, keep_first_pick)
        if out is not None:
            return out
    if noh_scores is None:
        gate, extras = False, None
    else:
        gate = partial(_noh_gate, noh_score_thr)
        extras = dict(boxes=boxes, noh_boxes=noh_boxes, noh_scores=noh_scores)
    return sequential_rescore(boxes, scores, float(iou_threshold), gate,
                              partial(_noh_edges, 1.0 / (2.0 * sigma * sigma), flag_thr), extras,
                              min_score=min_score, max_num=max_num, legacy_iou_offset=legacy_iou_offset,
                              labels=labels, keep_first_pick=keep_first_pick, edge_iou=False)


def _noh_nms_kernel(boxes, scores, noh_scores, noh_boxes, iou_threshold, noh_score_thr, inv_two_var, flag_thr,
                    min_score, max_num, legacy_iou_offset, labels, keep_first_pick):
    """:func:`noh_nms` on the compiled CPU kernel (see :mod:`._ckernel`); None when it is
    unavailable. Same candidates, gate and arithmetic as the numpy path."""
    b = boxes.detach().numpy()
    cur = scores.detach().numpy().copy()
    lab = None if labels is None else labels.detach().numpy()
    alive = _initial_alive(_NumpyOps, cur, b, min_score, lab, keep_first_pick)
    gate = ob = None
    if noh_scores is not None:
        ob = noh_boxes.detach().numpy()
        gate = _noh_gate(noh_score_thr, _NumpyOps, dict(noh_scores=noh_scores.detach().numpy(), noh_boxes=ob))
        if not gate.any():  # no NOH anywhere: plain greedy NMS (as the vectorised path)
            gate = ob = None
    keep = _ckernel.noh_nms_numpy(b, cur, alive, lab, gate, ob, iou_threshold, inv_two_var, flag_thr, min_score,
                                  legacy_iou_offset)
    if keep is None:
        return None
    if max_num is not None and max_num > 0:
        keep = keep[:max_num]
    return torch.from_numpy(keep), torch.from_numpy(cur.take(keep))


def _noh_gate(noh_score_thr, ops, extras):
    """NOH active: p > ``noh_score_thr`` and a finite hallucinated box (NaN p: inactive)."""
    return (extras['noh_scores'] > noh_score_thr) & ops.isfinite_rows(extras['noh_boxes'])


def _noh_edges(inv_two_var, flag_thr, ops, extras, src, dst, iou):
    """Gaussian NOH weight of each picked box ``src`` on a candidate ``dst``; flags.

    The offset of candidate j from the hallucinated box o_i of the picked box i, in
    i's frame, is enc(b_i, b_j) - enc(b_i, o_i) = ((x1_j - ox1_i) / w_i,
    (y1_j - oy1_i) / h_i, ln w_j - ln ow_i, ln h_j - ln oh_i); widths/heights are
    floored at ``EPS``. A box whose NOH is off (outside the gate, or flagged) has NaN
    scale terms, so its weight is NaN (greedy suppression). Targets with w >= flag_thr
    are flagged here (their scale terms become NaN). Returns the (E,) weights.
    """
    terms = extras.get('_terms')
    if terms is None:  # per-box terms, once per call of the op
        terms = extras['_terms'] = _noh_terms(ops, extras['boxes'], extras['noh_boxes'], extras['gate'])
    cand, hall, scale = terms
    d = ops.take(cand, dst) - ops.take(hall, src)  # (E, 4) rows: contiguous, fast elementwise
    d *= ops.take(scale, src)
    d *= d
    dist2 = d[:, 0] + d[:, 1]  # a column sum: numpy's sum(1) over 4 columns is slow
    dist2 += d[:, 2]
    dist2 += d[:, 3]
    w = ops.xp.exp(dist2 * -inv_two_var)
    scale[dst[w >= flag_thr]] = float('nan')  # flagged: greedy when picked (NaN >= thr is False)
    return w


def _noh_terms(ops, b, o, gate):
    """Per-box rows (N, 4): candidate (x1, y1, ln w, ln h), hallucinated box (same terms)
    and the picked box's scale (1 / w, 1 / h, 1, 1), NaN outside the gate; widths and
    heights floored at ``EPS``."""
    xp = ops.xp
    o = ops.to_float(o, b)
    w, h = ops.clip_min(b[:, 2] - b[:, 0], EPS), ops.clip_min(b[:, 3] - b[:, 1], EPS)
    ow, oh = ops.clip_min(o[:, 2] - o[:, 0], EPS), ops.clip_min(o[:, 3] - o[:, 1], EPS)
    one = xp.ones_like(w)
    scale = xp.stack([1.0 / w, 1.0 / h, one, one], 1)
    scale[~gate] = float('nan')
    return (xp.stack([b[:, 0], b[:, 1], xp.log(w), xp.log(h)], 1),
            xp.stack([o[:, 0], o[:, 1], xp.log(ow), xp.log(oh)], 1), scale)
