"""Shared machinery of the score-rescoring NMS family (greedy, soft, adaptive, NOH).

All members follow the same sequential rule: repeatedly pick the remaining
candidate with the highest *current* score (ties: lowest index), then rescale
the score of every remaining candidate it "affects" by a pair factor in
[0, 1] and drop candidates whose score fell below ``min_score``. Only the pair
factor differs between the methods.

Instead of one Python step per pick, :func:`sequential_rescore` processes the
picks in *rounds*. Sort the remaining candidates by current score; a candidate
that no higher-ranked remaining candidate affects can never be rescaled again
(scores only decrease, and only picked candidates rescale others), so it is
certain to be picked with its current score. All such "safe" candidates of a
round are picked together, their factors on the others are applied with one
batched product, and the round repeats on the rest. The result equals the
one-pick-at-a-time loop (up to float rounding in the order of the products),
because the pick order equals the order of final scores (descending, ties by
lowest index): a candidate picked earlier had, at its pick time, a score not
below the later one's score at that time, which is not below its final score.

Overlapping pairs (IoU above the smallest threshold) are found once by a sweep
over boxes sorted by x1 (no N x N matrix); each round is then a handful of
vectorised operations over the remaining boxes and pairs, with no Python loop
over boxes or pairs. The number of rounds is the depth of the suppression
chains (typically < 10 for N = 1000 crowded detections).

Two implementations of the same steps: torch (any device; used for CUDA tensors)
and numpy (CPU float tensors: the per-operation overhead of these small
vectorised steps is several times lower). ``FORCE_TORCH`` selects torch on the
CPU too; the tests check that both give the same result.
"""
from typing import Callable, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = ['pairwise_iou', 'overlap_pairs', 'overlap_pairs_numpy', 'check_inputs', 'sequential_rescore',
           'sequential_rescore_numpy', 'use_numpy', 'EPS']

#: Use the torch path on CPU too (tests set it to check both paths; CUDA always uses it).
FORCE_TORCH = False

#: Floor applied to box widths/heights and IoU unions (degenerate-box guard).
EPS = 1e-6

# edge_fn(u, v, iou) -> (factor u->v, factor v->u, flag u->v or None, flag v->u or None), each (E,)
EdgeFn = Callable[[Tensor, Tensor, Tensor], Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]]


def pairwise_iou(a: Tensor, b: Tensor, legacy_offset: bool = False) -> Tensor:
    """IoU of every box of ``a`` with every box of ``b``.

    Args:
        a (Tensor): (M, 4) boxes (x1, y1, x2, y2).
        b (Tensor): (K, 4) boxes (x1, y1, x2, y2).
        legacy_offset (bool): add 1 to the widths/heights of the *areas* but not of
            the intersection (the official NOH-NMS convention). Defaults to False
            (mmdet/mmcv convention, no offset).

    Returns:
        Tensor: (M, K) IoU; 0 where the union is empty (degenerate boxes).
    """
    off = 1.0 if legacy_offset else 0.0
    area_a = (a[:, 2] - a[:, 0] + off) * (a[:, 3] - a[:, 1] + off)
    area_b = (b[:, 2] - b[:, 0] + off) * (b[:, 3] - b[:, 1] + off)
    iw = (torch.minimum(a[:, None, 2], b[None, :, 2]) - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp_(min=0)
    ih = (torch.minimum(a[:, None, 3], b[None, :, 3]) - torch.maximum(a[:, None, 1], b[None, :, 1])).clamp_(min=0)
    inter = iw.mul_(ih)
    union = (area_a[:, None] + area_b[None, :]).sub_(inter)
    iou = inter / union
    # empty or negative unions (degenerate boxes) never overlap anything
    return iou.masked_fill_(~(union > 0), 0.0)


def check_inputs(boxes: Tensor, scores: Tensor, **extra: Optional[Tensor]) -> None:
    """Validate shapes/devices; raise ``ValueError`` naming the field and the fix."""
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f'boxes must be a (N, 4) tensor of (x1, y1, x2, y2), got '
                         f'{tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes)}')
    n = boxes.shape[0]
    if not isinstance(scores, Tensor) or scores.shape != (n,):
        raise ValueError(f'scores must be a ({n},) tensor matching boxes, got '
                         f'{tuple(scores.shape) if isinstance(scores, Tensor) else type(scores)}; '
                         'pass one score per box (squeeze a trailing dim)')
    for name, t in extra.items():
        if t is None:
            continue
        want = (n, 4) if name.endswith('boxes') else (n,)
        if not isinstance(t, Tensor) or tuple(t.shape) != want:
            raise ValueError(f'{name} must be a {want} tensor (one entry per box), got '
                             f'{tuple(t.shape) if isinstance(t, Tensor) else type(t)}')
        if t.device != boxes.device:
            raise ValueError(f'{name} is on {t.device} but boxes are on {boxes.device}; '
                             'move all inputs to one device')
    if scores.device != boxes.device:
        raise ValueError(f'scores are on {scores.device} but boxes are on {boxes.device}; '
                         'move all inputs to one device')


def overlap_pairs(boxes: Tensor, min_thr: float, legacy_offset: bool = False) -> Tuple[Tensor, Tensor, Tensor]:
    """All unordered pairs of boxes whose IoU exceeds ``min_thr``, without an N x N matrix.

    Candidates come from a sweep over boxes sorted by x1: the IoU of two boxes is at
    most the 1-D IoU of their x-intervals, so IoU > t needs an x-overlap above
    t / (1 + t) of the earlier box's width, i.e. ``x1_j < x2_i - w_i t / (1 + t)``.
    The exact IoU is then computed on the candidates only.

    Args:
        boxes (Tensor): (N, 4) boxes (x1, y1, x2, y2) with finite coordinates.
        min_thr (float): keep pairs with IoU > this (>= 0).
        legacy_offset (bool): see :func:`pairwise_iou`. Defaults to False.

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``u`` (P,), ``v`` (P,) int64 box indices
        (u != v, each unordered pair once) and their IoU (P,).
    """
    n = boxes.shape[0]
    dev = boxes.device
    x1s, order = torch.sort(boxes[:, 0], stable=True)
    x1, y1, x2, y2 = boxes.index_select(0, order).t().contiguous()
    t = max(float(min_thr), 0.0)
    reach = x2 - (x2 - x1).clamp(min=0) * (t / (1.0 + t))
    hi = torch.searchsorted(x1s, reach, side='left')
    start = torch.arange(1, n + 1, device=dev)
    count = (hi - start).clamp_(min=0)
    total = int(count.sum())
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return empty, empty, boxes.new_zeros(0)
    first = torch.repeat_interleave(torch.arange(n, device=dev), count, output_size=total)
    # position of each candidate inside its run, shifted to the run's first partner
    shift = start - (torch.cumsum(count, 0) - count)
    second = torch.arange(total, device=dev) + shift.index_select(0, first)
    off = 1.0 if legacy_offset else 0.0
    area = (x2 - x1 + off) * (y2 - y1 + off)
    x2f, x2s = x2.index_select(0, first), x2.index_select(0, second)
    iw = (torch.minimum(x2f, x2s) - x1.index_select(0, second)).clamp_(min=0)  # x1 ascending
    y1f, y1s = y1.index_select(0, first), y1.index_select(0, second)
    y2f, y2s = y2.index_select(0, first), y2.index_select(0, second)
    ih = (torch.minimum(y2f, y2s) - torch.maximum(y1f, y1s)).clamp_(min=0)
    inter = iw.mul_(ih)
    union = area.index_select(0, first).add_(area.index_select(0, second)).sub_(inter)
    iou = inter.div_(union).masked_fill_(~(union > 0), 0.0)
    m = (iou > min_thr).nonzero().squeeze(1)
    return (order.index_select(0, first.index_select(0, m)),
            order.index_select(0, second.index_select(0, m)), iou.index_select(0, m))


def overlap_pairs_numpy(boxes: np.ndarray, min_thr: float, legacy_offset: bool = False):
    """:func:`overlap_pairs` on a numpy (N, 4) array, with an extra pruning in y.

    IoU > t also needs a y-overlap above t / (1 + t) of the heights, hence
    |y1_i - y1_j| < h_max / (1 + t). Boxes are put into horizontal bands of that
    height and sorted by (band, x1); a box's partners lie in its own band (sweep in x
    as in :func:`overlap_pairs`) or in the next band with
    x1_i - w_max / (1 + t) <= x1_j < x2_i - w_i t / (1 + t). Same outputs (as numpy
    arrays, possibly in another order) with fewer candidates than the x-only sweep.
    """
    n = boxes.shape[0]
    t = max(float(min_thr), 0.0)
    b = boxes.astype(np.float64)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    w, h = np.maximum(x2 - x1, 0), np.maximum(y2 - y1, 0)
    w_max, band_h = float(w.max()), float(h.max()) / (1.0 + t)
    band = np.floor((y1 - y1.min()) / band_h) if band_h > 0 else np.zeros(n)
    xs = x1 - x1.min()
    span = float(xs.max()) + 2 * w_max + 1.0
    key = band * span + xs
    order = np.argsort(key, kind='stable')
    key, band, xs = key[order], band[order], xs[order]
    reach = band * span + (x2[order] - x1.min()) - w[order] * (t / (1.0 + t))
    pos = np.arange(n)
    # same band: partners after i in sorted order with x1_j < reach_i
    count1 = np.maximum(np.searchsorted(key, reach, side='left') - (pos + 1), 0)
    # next band: x1_j in [x1_i - w_max / (1 + t), reach_i)
    lo2 = np.searchsorted(key, (band + 1) * span + xs - w_max / (1.0 + t), side='left')
    count2 = np.maximum(np.searchsorted(key, reach + span, side='left') - lo2, 0)
    starts = np.concatenate([pos + 1, lo2])
    counts = np.concatenate([count1, count2])
    total = int(counts.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=boxes.dtype)
    run = np.repeat(np.arange(2 * n), counts)
    first = run % n
    second = np.arange(total) + (starts - (np.cumsum(counts) - counts)).take(run)
    first, second = order.take(first), order.take(second)
    bx = boxes
    off = 1.0 if legacy_offset else 0.0
    area = (bx[:, 2] - bx[:, 0] + off) * (bx[:, 3] - bx[:, 1] + off)
    cx1, cy1, cx2, cy2 = (np.ascontiguousarray(bx[:, k]) for k in range(4))
    iw = np.minimum(cx2.take(first), cx2.take(second)) - np.maximum(cx1.take(first), cx1.take(second))
    ih = np.minimum(cy2.take(first), cy2.take(second)) - np.maximum(cy1.take(first), cy1.take(second))
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    union = area.take(first) + area.take(second) - inter
    iou = np.zeros_like(inter)
    np.divide(inter, union, out=iou, where=union > 0)
    m = _nz(iou > min_thr)
    return first.take(m), second.take(m), iou.take(m)


def sequential_rescore_numpy(boxes: np.ndarray, scores: np.ndarray, row_thr: np.ndarray, gate: np.ndarray,
                             edge_fn: Optional[EdgeFn] = None, min_score: float = 0.0, max_num: int = -1,
                             legacy_iou_offset: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`sequential_rescore` on numpy arrays (the CPU path): same arguments and results.

    ``edge_fn`` receives and returns numpy arrays here.
    """
    cur = scores.copy()
    with np.errstate(invalid='ignore'):
        alive = np.isfinite(cur) & np.isfinite(boxes).all(1) & (cur >= min_score)
    idx = _nz(alive)
    if idx.size == 0:
        return idx.astype(np.int64), cur[:0]
    uniform_thr = bool((row_thr == row_thr[0]).all())
    rescaling = bool(gate.any()) and edge_fn is not None
    u, v, iou = overlap_pairs_numpy(boxes[idx], float(row_thr[idx].min()), legacy_iou_offset)
    uv = np.stack([idx[u], idx[v]], 1)
    attr, has_flags = None, False
    if rescaling:
        f_uv, f_vu, g_uv, g_vu = edge_fn(uv[:, 0], uv[:, 1], iou)
        has_flags = g_uv is not None
        attr = np.stack([f_uv, f_vu] + ([g_uv, g_vu] if has_flags else []), 1).astype(cur.dtype)
    keep, final = _rounds_numpy(cur, alive, uv, iou, attr, gate, row_thr, uniform_thr, has_flags,
                                float(min_score))
    order = np.lexsort((keep, -final))  # final score descending, ties by lowest index
    keep, final = keep[order], final[order]
    if max_num is not None and max_num > 0:
        keep, final = keep[:max_num], final[:max_num]
    return keep.astype(np.int64), final


def sequential_rescore(boxes: Tensor, scores: Tensor, row_thr: Tensor, gate: Tensor,
                       edge_fn: Optional[EdgeFn] = None, min_score: float = 0.0, max_num: int = -1,
                       legacy_iou_offset: bool = False) -> Tuple[Tensor, Tensor]:
    """Run the pick-and-rescore loop in rounds (see the module docstring).

    When box i is picked it acts on every remaining box j with
    IoU(b_i, b_j) > ``row_thr[i]``: if ``gate[i]`` and i is not flagged, j's score
    is multiplied by the pair factor of ``edge_fn`` (and j is flagged where the
    pair's flag is set); otherwise j's score is zeroed (greedy suppression).

    Args:
        boxes (Tensor): (N, 4) boxes (x1, y1, x2, y2).
        scores (Tensor): (N,) initial scores.
        row_thr (Tensor): (N,) per-box IoU threshold of the picked box.
        gate (Tensor): (N,) bool, which boxes rescale instead of suppressing.
        edge_fn (callable, optional): ``edge_fn(u, v, iou)`` for E overlapping pairs
            given as (E,) index arrays and their (E,) IoU -- torch tensors, or numpy
            arrays on the CPU path; returns, of the same kind, the factors of u acting
            on v and of v acting on u, (E,) each, and the matching (E,) bool flag masks
            (or None for no flags). Only called when some ``gate`` is set.
        min_score (float): candidates whose score falls below it are dropped. Defaults to 0.
        max_num (int): keep at most this many (highest final score); <= 0 keeps all.
            Defaults to -1.
        legacy_iou_offset (bool): see :func:`pairwise_iou`. Defaults to False.

    Returns:
        tuple[Tensor, Tensor]: ``keep`` (K,) int64 indices into ``boxes`` and their
        final scores (K,), in pick order (final score descending, ties by lowest index).
        Boxes with a non-finite coordinate or score are never kept.

    Note:
        An edge acts only from the higher-ranked to the lower-ranked box of a round.
        This is exact when the relation is symmetric (a single threshold) or when the
        factors are 0 (Adaptive-NMS): a lower box that acts on a higher one would then
        be blocked itself, or the higher one is never rescaled and is picked first.
    """
    device = boxes.device
    if use_numpy(boxes, scores):
        keep, final = sequential_rescore_numpy(boxes.numpy(), scores.numpy(), row_thr.numpy(), gate.numpy(),
                                               edge_fn, min_score, max_num, legacy_iou_offset)
        return torch.from_numpy(keep), torch.from_numpy(final)
    cur = scores.clone()
    alive = torch.isfinite(cur) & torch.isfinite(boxes).all(1) & (cur >= min_score)
    idx = alive.nonzero().squeeze(1)
    if idx.numel() == 0:
        return idx, scores.new_zeros(0)
    thr_min = float(row_thr.index_select(0, idx).min())
    uniform_thr = bool((row_thr == row_thr[0]).all())
    rescaling = bool(gate.any()) and edge_fn is not None
    u, v, iou = overlap_pairs(boxes.index_select(0, idx), thr_min, legacy_iou_offset)
    uv = torch.stack([idx.index_select(0, u), idx.index_select(0, v)], 1)  # (E, 2)
    attr, has_flags = None, False
    if rescaling:
        f_uv, f_vu, g_uv, g_vu = edge_fn(uv[:, 0], uv[:, 1], iou)
        has_flags = g_uv is not None
        cols = [f_uv, f_vu] + ([g_uv, g_vu] if has_flags else [])
        attr = torch.stack([c.to(cur.dtype) for c in cols], 1)  # (E, 2 or 4) factors (and flags)
    keep, final = _rounds_torch(cur, alive, uv, iou, attr, gate, row_thr, uniform_thr, has_flags, min_score)
    # pick order == (final score desc, index asc): sort by index, then stable by score
    by_idx = torch.sort(keep).indices
    keep, final = keep.index_select(0, by_idx), final.index_select(0, by_idx)
    order = torch.sort(final, descending=True, stable=True).indices
    keep, final = keep.index_select(0, order), final.index_select(0, order)
    if max_num is not None and max_num > 0:
        keep, final = keep[:max_num], final[:max_num]
    return keep, final


def _nz(mask: np.ndarray) -> np.ndarray:
    """Indices of the True entries of a 1-D mask (``np.flatnonzero`` without its wrapper)."""
    return mask.nonzero()[0]


def use_numpy(*tensors: Tensor) -> bool:
    """Whether the CPU/numpy path applies (CPU float32/float64 inputs, not forced to torch)."""
    return not FORCE_TORCH and all(t.device.type == 'cpu' and t.dtype in (torch.float32, torch.float64)
                                   for t in tensors)


def _rounds_torch(cur, alive, uv, iou, attr, gate, row_thr, uniform_thr, has_flags, min_score):
    """The round loop on torch tensors (any device); returns picked indices and scores."""
    device = cur.device
    n = cur.shape[0]
    rescaling = attr is not None
    flags = torch.zeros(n, dtype=torch.bool, device=device)
    idx = alive.nonzero().squeeze(1)
    rank = torch.zeros(n, dtype=torch.long, device=device)
    picked, picked_scores = [], []
    while idx.numel() > 0:
        order = torch.sort(cur.index_select(0, idx), descending=True, stable=True).indices
        rank.index_copy_(0, idx.index_select(0, order), torch.arange(idx.numel(), device=device))
        u, v = uv[:, 0], uv[:, 1]
        up = rank.index_select(0, u) < rank.index_select(0, v)
        src = torch.where(up, u, v)
        dst = torch.where(up, v, u)
        sel = None
        if not uniform_thr:  # Adaptive-NMS: an edge acts only above its source's threshold
            sel = (iou > row_thr.index_select(0, src)).nonzero().squeeze(1)
            src, dst, up = src.index_select(0, sel), dst.index_select(0, sel), up.index_select(0, sel)
        blocked = torch.zeros(n, dtype=torch.bool, device=device).index_fill_(0, dst, True)
        safe = alive & ~blocked
        rows = safe.nonzero().squeeze(1)
        picked.append(rows)
        picked_scores.append(cur.index_select(0, rows))
        alive &= blocked
        if dst.numel() == 0:
            break
        from_safe = safe.index_select(0, src).nonzero().squeeze(1)
        s_src, s_dst = src.index_select(0, from_safe), dst.index_select(0, from_safe)
        if rescaling:
            e = from_safe if sel is None else sel.index_select(0, from_safe)
            a = attr.index_select(0, e)
            s_up = up.index_select(0, from_safe)
            on = gate.index_select(0, s_src) & ~flags.index_select(0, s_src)
            factor = torch.where(s_up, a[:, 0], a[:, 1])
            factor = torch.where(on, factor, torch.zeros_like(factor))
            cur.scatter_reduce_(0, s_dst, factor, 'prod')
            if has_flags:
                set_flag = on & (torch.where(s_up, a[:, 2], a[:, 3]) > 0)
                flags.index_fill_(0, s_dst.index_select(0, set_flag.nonzero().squeeze(1)), True)
        else:
            cur.index_fill_(0, s_dst, 0.0)
        alive &= cur >= min_score  # NaN compares False: dropped
        idx = alive.nonzero().squeeze(1)
        keep_edge = (alive.index_select(0, uv[:, 0]) & alive.index_select(0, uv[:, 1])).nonzero().squeeze(1)
        uv, iou = uv.index_select(0, keep_edge), iou.index_select(0, keep_edge)
        if rescaling:
            attr = attr.index_select(0, keep_edge)
    return torch.cat(picked), torch.cat(picked_scores)


def _rounds_numpy(cur, alive, uv, iou, attr, gate, row_thr, uniform_thr, has_flags, min_score):
    """:func:`_rounds_torch` on numpy arrays (CPU); same semantics, step by step."""
    n = cur.shape[0]
    cur = cur.copy()
    alive = alive.copy()
    flags = np.zeros(n, dtype=bool)
    rank = np.zeros(n, dtype=np.int64)
    idx = _nz(alive)
    u, v = uv[:, 0], uv[:, 1]
    picked, picked_scores = [], []
    while idx.size:
        order = np.argsort(-cur[idx], kind='stable')
        rank[idx[order]] = np.arange(idx.size)
        up = rank[u] < rank[v]
        src = np.where(up, u, v)
        dst = np.where(up, v, u)
        sel = None
        if not uniform_thr:
            sel = _nz(iou > row_thr[src])
            src, dst, up = src[sel], dst[sel], up[sel]
        blocked = np.zeros(n, dtype=bool)
        blocked[dst] = True
        safe = alive & ~blocked
        rows = _nz(safe)
        picked.append(rows)
        picked_scores.append(cur[rows])
        alive &= blocked
        if not dst.size:
            break
        from_safe = _nz(safe[src])
        s_src, s_dst = src[from_safe], dst[from_safe]
        if attr is not None:
            e = from_safe if sel is None else sel[from_safe]
            a = attr[e]
            s_up = up[from_safe]
            on = gate[s_src] & ~flags[s_src]
            factor = np.where(on, np.where(s_up, a[:, 0], a[:, 1]), 0).astype(cur.dtype)
            np.multiply.at(cur, s_dst, factor)
            if has_flags:
                flags[s_dst[on & (np.where(s_up, a[:, 2], a[:, 3]) > 0)]] = True
        else:
            cur[s_dst] = 0
        alive &= cur >= min_score
        idx = _nz(alive)
        keep_edge = _nz(alive[u] & alive[v])
        u, v, iou = u[keep_edge], v[keep_edge], iou[keep_edge]
        if attr is not None:
            attr = attr[keep_edge]
    return np.concatenate(picked), np.concatenate(picked_scores)
