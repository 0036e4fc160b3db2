"""Shared machinery of the score-rescoring NMS family (greedy, soft, adaptive, NOH).

All members follow the same sequential rule: repeatedly pick the remaining
candidate with the highest *current* score (ties: lowest index), then rescale
the score of every remaining candidate it "affects" by a pair factor in
[0, 1] and drop candidates whose score fell below ``min_score``. Only the pair
factor differs between the methods.

Instead of one Python step per pick, :func:`sequential_rescore` processes the
picks in *rounds*. A remaining candidate that no higher-scored remaining
neighbour affects can never be rescaled again (scores only decrease, and only
picked candidates rescale others), so it is certain to be picked with its
current score. All such "safe" candidates of a round are picked together, their
factors on the others are applied with one batched product, and the round
repeats on the rest. The pick test compares the current scores of the two ends
of each overlapping pair directly (no sort per round). The result equals the
one-pick-at-a-time loop (up to float rounding in the order of the products),
because the pick order equals the order of final scores (descending, ties by
lowest index): a candidate picked earlier had, at its pick time, a score not
below the later one's score at that time, which is not below its final score.

Overlapping pairs (IoU above the smallest threshold) are found once, without an
N x N matrix, by a sweep over boxes sorted by (class, horizontal band, x1) (see
:func:`overlap_pairs`); each round is then a handful of vectorised operations
over the remaining boxes and pairs. The number of rounds is the depth of the
suppression chains (typically < 10 for N = 1000 crowded detections).

One implementation for both array libraries: the steps are written once against
a tiny namespace (:class:`_NumpyOps` / :class:`_TorchOps`). CPU float inputs run
on numpy (its per-call overhead on these small arrays is several times lower
than torch's); other devices run the same steps on torch tensors. ``FORCE_TORCH``
selects torch on the CPU too; the tests check that both give the same result.
On the CPU, :func:`~mm_ext.core.nms.noh_nms` itself runs the compiled sequential kernel
of :mod:`._ckernel` when it builds (the vectorised rounds are then its fallback, and the
path of the other members and of CUDA).
"""
import math
from functools import partial
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ['pairwise_iou', 'overlap_pairs', 'check_inputs', 'sequential_rescore', 'use_numpy', 'EPS']

#: Use the torch path on CPU too (tests set it to check both paths; CUDA always uses it).
FORCE_TORCH = False

_NUMPY_FLOATS = (torch.float32, torch.float64)

#: Floor applied to box widths/heights and IoU unions (degenerate-box guard).
EPS = 1e-6

#: Horizontal bands per maximal vertical reach in the pair sweep (more bands: fewer
#: candidates, more queries): 1 up to ``_FINE_BANDS_FROM`` boxes, 2 from there on
#: (measured on the crowds of ``tools/bench/noh_nms.py``: one band is faster at
#: N = 1000 and 2000, two bands at N = 3000).
_FINE_BANDS_FROM = 2500


#: complex dtype of the same precision (two coordinates read as one number)
_COMPLEX = {np.float32: np.complex64, np.float64: np.complex128}


class _NumpyOps:
    """The few calls whose numpy and torch spellings differ (numpy side)."""
    xp = np

    @staticmethod
    def nz(mask):
        return mask.nonzero()[0]

    @staticmethod
    def take(a, idx):
        return a.take(idx, axis=0)

    @staticmethod
    def zeros_bool(n, like):
        return np.zeros(n, dtype=bool)

    @staticmethod
    def ones_bool(n, like):
        return np.ones(n, dtype=bool)

    @staticmethod
    def arange(n, like):
        return np.arange(n)

    @staticmethod
    def cat(xs):
        return np.concatenate(xs)

    @staticmethod
    def repeat(x, counts, total):
        return np.repeat(x, counts)

    @staticmethod
    def cumsum(x):
        return np.cumsum(x)

    @staticmethod
    def argsort(x):
        return np.argsort(x, kind='stable')

    @staticmethod
    def clip0(x):
        return np.maximum(x, 0)

    @staticmethod
    def clip_min(x, v):
        return np.maximum(x, v)

    @staticmethod
    def clip_max(x, v):
        return np.minimum(x, v)

    @staticmethod
    def mul_at(a, idx, f):
        np.multiply.at(a, idx, f)

    @staticmethod
    def isfinite_rows(a):
        """(N, 4) -> (N,) all four finite (the four bool bytes of a row read as one uint32)."""
        return np.isfinite(a).view(np.uint32).reshape(-1) == 0x01010101

    @staticmethod
    def lexsort_desc(score, idx):
        """Order by score descending, then index ascending."""
        return np.lexsort((idx, -score))

    @staticmethod
    def to_float(x, like):
        return x.astype(like.dtype, copy=False)

    @staticmethod
    def to_f64(x):
        return x.astype(np.float64, copy=False)

    @staticmethod
    def take_cols(a, idx):
        return a.take(idx, axis=1)

    @staticmethod
    def no_pairs(like):
        return np.zeros((2, 0), dtype=np.int64)

    @staticmethod
    def nan0(x):
        """NaN -> 0, in place (x >= 0 or NaN)."""
        return np.fmax(x, 0, out=x)

    @staticmethod
    def flip0(a):
        return a[::-1]

    @staticmethod
    def neg_xy(rows):
        """(N, 4) contiguous rows (x1, y1, x2, y2) -> (-x1, -y1, x2, y2), in place."""
        c = rows.view(_COMPLEX[rows.dtype.type])  # (N, 2): x1 + i y1, x2 + i y2
        np.negative(c[:, 0], out=c[:, 0])
        return rows

    @staticmethod
    def intersections(rows, first, second):
        """Intersection areas of the box pairs (first, second) of ``rows`` (N, 4) =
        (-x1, -y1, x2, y2) (see :meth:`neg_xy`): one minimum over contiguous (C, 4) rows,
        then the two (C,) differences as one complex addition (numpy is slow on views of
        two columns; negation and a + (-b) = a - b are exact, as is a complex sum)."""
        m = rows.take(first, axis=0)
        np.minimum(m, rows.take(second, axis=0), out=m)
        mc = m.view(_COMPLEX[m.dtype.type])  # (C, 2): -max x1 + i (-max y1), min x2 + i min y2
        wh = (mc[:, 1] + mc[:, 0]).view(m.dtype)  # iw, ih interleaved
        np.maximum(wh, 0, out=wh)
        return wh[0::2] * wh[1::2]


class _TorchOps:
    """Torch side of :class:`_NumpyOps` (any device)."""
    xp = torch

    @staticmethod
    def nz(mask):
        return mask.nonzero().squeeze(1)

    @staticmethod
    def take(a, idx):
        return a.index_select(0, idx)

    @staticmethod
    def zeros_bool(n, like):
        return torch.zeros(n, dtype=torch.bool, device=like.device)

    @staticmethod
    def ones_bool(n, like):
        return torch.ones(n, dtype=torch.bool, device=like.device)

    @staticmethod
    def arange(n, like):
        return torch.arange(n, device=like.device)

    @staticmethod
    def cat(xs):
        return torch.cat(xs)

    @staticmethod
    def repeat(x, counts, total):
        return torch.repeat_interleave(x, counts, output_size=total)

    @staticmethod
    def cumsum(x):
        return torch.cumsum(x, 0)

    @staticmethod
    def argsort(x):
        return torch.sort(x, stable=True).indices

    @staticmethod
    def clip0(x):
        return x.clamp(min=0)

    @staticmethod
    def clip_min(x, v):
        return x.clamp(min=v)

    @staticmethod
    def clip_max(x, v):
        return x.clamp(max=v)

    @staticmethod
    def mul_at(a, idx, f):
        a.scatter_reduce_(0, idx, f, 'prod')

    @staticmethod
    def isfinite_rows(a):
        return torch.isfinite(a).all(1)

    @staticmethod
    def lexsort_desc(score, idx):
        by_idx = torch.sort(idx, stable=True).indices
        return by_idx.index_select(0, torch.sort(score.index_select(0, by_idx), descending=True,
                                                 stable=True).indices)

    @staticmethod
    def to_float(x, like):
        return x.to(like.dtype)

    @staticmethod
    def to_f64(x):
        return x.double()

    @staticmethod
    def take_cols(a, idx):
        return a.index_select(1, idx)

    @staticmethod
    def no_pairs(like):
        return torch.zeros((2, 0), dtype=torch.long, device=like.device)

    @staticmethod
    def nan0(x):
        return x.nan_to_num_(nan=0.0)

    @staticmethod
    def flip0(a):
        return a.flip(0)

    @staticmethod
    def neg_xy(rows):
        rows[:, :2] = -rows[:, :2]
        return rows

    @staticmethod
    def intersections(rows, first, second):
        m = torch.minimum(rows.index_select(0, first), rows.index_select(0, second))
        wh = (m[:, 2:] + m[:, :2]).clamp_(min=0)
        return wh[:, 0] * wh[:, 1]


# edge_fn(ops, extras, src, dst, iou) -> (E,) factors of src on dst and (E,) flags or None
EdgeFn = Callable


def use_numpy(*tensors: Tensor) -> bool:
    """Whether the CPU/numpy path applies (CPU float32/float64 inputs, not forced to torch)."""
    if FORCE_TORCH:
        return False
    for t in tensors:
        if not (t.is_cpu and t.dtype in _NUMPY_FLOATS):
            return False
    return True


def pairwise_iou(a: Tensor, b: Tensor, legacy_offset: bool = False) -> Tensor:
    """IoU of every box of ``a`` with every box of ``b`` (dense; tests and small inputs).

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


def overlap_pairs(boxes, min_thr: float, legacy_offset: bool = False, labels=None, ops=None):
    """All unordered pairs of boxes (of the same label) whose IoU exceeds ``min_thr``.

    No N x N matrix. IoU > t needs a 1-D IoU > t along each axis and, for the
    smaller and the larger width (height), ``min > t max``. With i the box of
    smaller x1 (the "anchor") and c = 1 / (1 + t) this gives
    ``0 <= x1_j - x1_i < c w_i (1 - t^2)``, and vertically
    ``-c (min(h_i / t, h_max) - t h_i) < y1_j - y1_i < c h_i (1 - t^2)``.
    Boxes are sorted by (label, band of height ``c h_max / B``, x1) with B = 1 or 2
    (see ``_FINE_BANDS_FROM``); an anchor's candidates are then one contiguous run in
    each of the 2B + 1 bands its vertical window can touch (all found with three
    ``searchsorted`` calls), and the exact IoU is computed on the candidates only.

    Args:
        boxes (ndarray | Tensor): (N, 4) finite boxes (x1, y1, x2, y2).
        min_thr (float): keep pairs with IoU > this (>= 0).
        legacy_offset (bool): see :func:`pairwise_iou`. Defaults to False.
        labels (ndarray | Tensor, optional): (N,) int class ids; boxes of different
            labels are never paired. Defaults to None (one class).
        ops: :class:`_NumpyOps` or :class:`_TorchOps`; inferred from ``boxes``.

    Returns:
        tuple: ``u`` (P,), ``v`` (P,) int64 box indices with u < v (each unordered
        pair once) and their IoU (P,), as arrays of the input's kind.
    """
    if ops is None:
        ops = _TorchOps if isinstance(boxes, Tensor) else _NumpyOps
    uv, iou = _pairs(boxes, min_thr, legacy_offset, labels, ops)
    return uv[0], uv[1], iou


def _pairs(boxes, min_thr, legacy_offset, labels, ops):
    """:func:`overlap_pairs` with the pairs as one (2, P) array (rows u < v)."""
    xp = ops.xp
    t = max(float(min_thr), 0.0)
    c = 1.0 / (1.0 + t)
    b64 = ops.to_f64(boxes)  # the sweep keys need the precision
    x1, y1 = b64[:, 0], b64[:, 1]
    w, h = b64[:, 2] - x1, b64[:, 3] - y1
    empty = ops.no_pairs(boxes)
    sub = None
    if x1.shape[0] >= 2 and not (float(w.min()) > 0 and float(h.min()) > 0):
        # an empty box overlaps nothing (IoU 0, also with the legacy offset)
        sub = ops.nz((w > 0) & (h > 0))
        boxes, x1, y1, w, h = (ops.take(a, sub) for a in (boxes, x1, y1, w, h))
        labels = None if labels is None else ops.take(labels, sub)
    n = x1.shape[0]
    if n < 2:
        return empty, boxes[:0, 0]
    h_max = float(h.max())
    nb = 1 if n < _FINE_BANDS_FROM else 2  # B
    band_h = c * h_max / nb
    yrel = (y1 - float(y1.min())) / band_h
    yband = xp.floor(yrel)
    band = yband
    if labels is not None:  # classes far apart in band space: never within reach
        band = yband + ops.to_float(labels, yband) * (float(yband.max()) + 2 * nb + 2)
    xs = x1 - float(x1.min())
    span = float(xs.max()) + 2.0 * float(w.max()) + 1.0
    key = band * span + xs
    order = ops.argsort(key)
    key_s, band_s, xs_s = ops.take(key, order), ops.take(band, order), ops.take(xs, order)
    yrel_s, h_s, yband_s = ops.take(yrel, order), ops.take(h, order), ops.take(yband, order)
    shrink = 1.0 - t * t
    reach = ops.take(w, order) * (c * shrink) + 1e-9 * span  # rounding margin: a superset
    up = (ops.clip_max(h_s / t, h_max) if t > 0 else xp.ones_like(h_s) * h_max) - t * h_s
    k_lo = xp.floor(yrel_s - (c / band_h) * up) - yband_s  # band offsets the window touches
    k_hi = xp.floor(yrel_s + (c * shrink / band_h) * h_s) - yband_s
    kf = ops.to_float(ops.arange(2 * nb + 1, boxes) - nb, key)[:, None]
    base = ((band_s[None, :] + kf) * span + xs_s[None, :]).reshape(-1)  # (2B + 1) x N window starts
    touch = (k_lo[None, :] <= kf) & (k_hi[None, :] >= kf)  # bands the window touches
    q = ops.nz(touch.reshape(-1))
    anchor = q % n
    per_row = touch.sum(1).tolist()
    a = sum(per_row[:nb])  # row blocks of q: bands above, own band, bands below
    b = a + per_row[nb]
    qbase = ops.take(base, q)
    hi = xp.searchsorted(key_s, qbase + ops.take(reach, anchor), side='left')
    # bands above: x1_j > x1_i strictly (a tie pair in two bands is found once, from above);
    # own band: the partners after the anchor; bands below: x1_j >= x1_i
    lo = ops.cat([xp.searchsorted(key_s, qbase[:a], side='right'), anchor[a:b] + 1,
                  xp.searchsorted(key_s, qbase[b:], side='left')])
    counts = ops.clip0(hi - lo)
    total = int(counts.sum())
    if total == 0:
        return empty, boxes[:0, 0]
    # candidate pairs as positions in the sorted order
    first_s = ops.repeat(anchor, counts, total)
    second_s = ops.repeat(lo - (ops.cumsum(counts) - counts), counts, total)
    second_s += ops.arange(total, boxes)
    # exact IoU of the candidates, in the input dtype, from the sorted rows
    off = 1.0 if legacy_offset else 0.0
    rows = ops.take(boxes, order)
    area = (rows[:, 2] - rows[:, 0] + off) * (rows[:, 3] - rows[:, 1] + off)
    inter = ops.intersections(ops.neg_xy(rows), first_s, second_s)
    union = ops.take(area, first_s)  # in place from here on: a smaller working set
    union += ops.take(area, second_s)
    union -= inter
    m = ops.nz(inter > union * t)  # IoU > t (the union is positive: no empty boxes here)
    iou = ops.take(inter, m) / ops.take(union, m)
    if t > 0:  # the same test after the division (rounding at the boundary)
        ok = iou > t
        if not bool(ok.all()):
            m2 = ops.nz(ok)
            m, iou = ops.take(m, m2), ops.take(iou, m2)
    first, second = ops.take(order, ops.take(first_s, m)), ops.take(order, ops.take(second_s, m))
    if sub is not None:
        first, second = ops.take(sub, first), ops.take(sub, second)
    return xp.stack([xp.minimum(first, second), xp.maximum(first, second)]), iou


def _initial_alive(ops, cur, boxes, min_score, labels, keep_first_pick):
    """Finite candidates at or above ``min_score`` (plus each class's first pick);
    None when that is every box (the common case, tested with three reductions)."""
    xp = ops.xp
    # a sum is finite only if every term is (an overflowing finite sum takes the exact path)
    if cur.shape[0] and math.isfinite(float(boxes.sum()) + float(cur.sum())) and float(cur.min()) >= min_score:
        return None
    finite = xp.isfinite(cur) & ops.isfinite_rows(boxes)
    alive = finite & (cur >= min_score)
    if keep_first_pick and bool((finite & ~alive).any()):
        # the official loop drops candidates only after a pick: a class whose best box
        # scores below min_score still outputs that box
        idx = ops.nz(finite)
        order = ops.take(idx, ops.lexsort_desc(ops.take(cur, idx), idx))
        if labels is None:
            first = order[:1]
        else:
            by_lab = ops.take(order, ops.argsort(ops.take(labels, order)))  # stable: best first per class
            lab_s = ops.take(labels, by_lab)
            starts = ops.nz(lab_s[1:] != lab_s[:-1]) + 1
            first = ops.take(by_lab, ops.cat([starts[:1] * 0, starts]))
        alive[first] = True
    return alive


def sequential_rescore(boxes: Tensor, scores: Tensor, row_thr: Union[float, Tensor], gate,
                       edge_fn: Optional[EdgeFn] = None, extras: Optional[Dict[str, Tensor]] = None,
                       min_score: float = 0.0, max_num: int = -1, legacy_iou_offset: bool = False,
                       labels: Optional[Tensor] = None, keep_first_pick: bool = True,
                       edge_iou: bool = True) -> Tuple[Tensor, Tensor]:
    """Run the pick-and-rescore loop in rounds (see the module docstring).

    When box i is picked it acts on every remaining box j of its label with
    IoU(b_i, b_j) > ``row_thr[i]``: j's score is multiplied by the pair factor of
    ``edge_fn``, which is 0 (greedy suppression) where i is outside the gate or
    switched off by the edge function.

    Args:
        boxes (Tensor): (N, 4) boxes (x1, y1, x2, y2).
        scores (Tensor): (N,) initial scores.
        row_thr (float | Tensor): IoU threshold of the picked box, one for all or
            (N,) per box.
        gate (bool | Tensor | callable): which boxes rescale instead of suppressing:
            one bool for all, a (N,) bool tensor, or ``gate(ops, extras)`` returning
            the (N,) bool array on the path's arrays.
        edge_fn (callable, optional): ``edge_fn(ops, extras, src, dst, iou)`` for
            E pairs in which the picked box ``src`` (E,) acts on ``dst`` (E,) with IoU
            ``iou`` (E,), with ``extras`` converted to the arrays of the path (numpy or
            torch) plus ``extras['gate']``, the gate as a (N,) bool array. Returns the
            (E,) factors in [0, 1]; a source outside the gate, or one the edge function
            itself has switched off (e.g. NOH-NMS flags, kept in its own state in
            ``extras``), must give 0 or NaN (read as 0: greedy suppression). Called
            once per round for the pairs applied in it (each pair at most once). Only
            used when some ``gate`` is set.
        extras (dict[str, Tensor], optional): per-box tensors ``edge_fn`` needs.
        min_score (float): candidates whose score falls below it are dropped. Defaults to 0.
        max_num (int): keep at most this many (highest final score); <= 0 keeps all.
            Defaults to -1.
        legacy_iou_offset (bool): see :func:`pairwise_iou`. Defaults to False.
        labels (Tensor, optional): (N,) int class ids; classes never interact (all
            classes in one pass). Defaults to None (one class).
        keep_first_pick (bool): the first pick of each class is kept even when it
            scores below ``min_score`` (the official loop drops candidates only after
            a pick). False drops every candidate below ``min_score`` up front.
            Defaults to True.
        edge_iou (bool): ``edge_fn`` reads the IoU (False: it gets None, and the IoU
            of the pairs is not carried through the rounds). Defaults to True.

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
    numpy_path = use_numpy(boxes, scores)
    ops = _NumpyOps if numpy_path else _TorchOps

    def arr(t):
        return None if t is None else (t.detach().numpy() if numpy_path else t.detach())

    b = arr(boxes)
    cur = arr(scores).copy() if numpy_path else scores.detach().clone()
    lab = arr(labels)
    n = cur.shape[0]
    alive = _initial_alive(ops, cur, b, min_score, lab, keep_first_pick)
    idx = None if alive is None else ops.nz(alive)
    if idx is not None and idx.shape[0] == 0:
        keep = idx
    else:
        ex = {k: arr(t) for k, t in (extras or {}).items()}
        thr = None if not isinstance(row_thr, Tensor) else arr(row_thr)
        if thr is None:
            min_thr = float(row_thr)
        else:
            min_thr = float((thr if idx is None else ops.take(thr, idx)).min())
        if callable(gate):
            gate_a = gate(ops, ex)
        elif isinstance(gate, Tensor):
            gate_a = arr(gate).copy() if numpy_path else gate.clone()
        else:
            gate_a = ops.zeros_bool(n, cur) | bool(gate)
        if idx is None:  # every box is a candidate
            alive = ops.ones_bool(n, cur)
            uv, iou = _pairs(b, min_thr, legacy_iou_offset, lab, ops)
        else:
            uv, iou = _pairs(ops.take(b, idx), min_thr, legacy_iou_offset,
                             None if lab is None else ops.take(lab, idx), ops)
            uv = idx.take(uv)  # back to box indices (a flat take: same in numpy and torch)
        edges = None
        if edge_fn is not None and bool(gate_a.any()):
            ex['gate'] = gate_a
            edges = partial(edge_fn, ops, ex)
        iou = ops.to_float(iou, cur) if thr is not None or (edges is not None and edge_iou) else None
        keep = _rounds(ops, cur, alive, uv, iou, thr, edges, float(min_score))
    final = ops.take(cur, keep)
    order = ops.lexsort_desc(final, keep)
    keep, final = ops.take(keep, order), ops.take(final, order)
    if max_num is not None and max_num > 0:
        keep, final = keep[:max_num], final[:max_num]
    if numpy_path:
        return torch.from_numpy(keep.astype(np.int64, copy=False)), torch.from_numpy(final)
    return keep.to(device), final


def _rounds(ops, cur, alive, uv, iou, row_thr, edges, min_score):
    """The round loop; updates ``cur`` in place and returns the picked indices (any order).

    ``uv`` (2, P) holds each overlapping pair (u < v), ``iou`` its IoU (None when
    nothing reads it); ``row_thr`` the per-box thresholds (None: one threshold, every
    pair acts). ``edges(src, dst, iou)`` gives the factors of the pairs applied in a
    round (each pair is applied at most once), or is None for greedy suppression.
    Pair arrays are kept stacked: one call serves both rows.
    """
    xp = ops.xp
    n = cur.shape[0]
    picked = []
    while uv.shape[1]:
        c = cur.take(uv)  # (2, P) current scores (a flat take: same in numpy and torch)
        sd = xp.where(c[0] >= c[1], uv, ops.flip0(uv))  # (source, target); the lower index wins ties
        e = None
        if row_thr is not None:  # Adaptive-NMS: an edge acts only above its source's threshold
            e = ops.nz(iou > row_thr.take(sd[0]))
            sd = ops.take_cols(sd, e)
        blocked = ops.zeros_bool(n, cur)
        blocked[sd[1]] = True
        safe = alive > blocked  # alive and not blocked
        picked.append(ops.nz(safe))
        alive = alive & blocked
        fs = ops.nz(safe.take(sd[0]))  # the pairs whose source is picked now
        s_sd = ops.take_cols(sd, fs)
        if edges is None:  # greedy suppression removes the box whatever min_score is
            alive[s_sd[1]] = False
        else:
            s_iou = None if iou is None else iou.take(fs if e is None else e.take(fs))
            factor = ops.nan0(edges(s_sd[0], s_sd[1], s_iou))  # NaN (switched off source): 0
            ops.mul_at(cur, s_sd[1], ops.to_float(factor, cur))
            alive = alive & (cur >= min_score)  # NaN compares False: dropped
        a = alive.take(uv)
        ke = ops.nz(a[0] & a[1])
        uv = ops.take_cols(uv, ke)
        if iou is not None:
            iou = iou.take(ke)
    picked.append(ops.nz(alive))
    return ops.cat(picked)
