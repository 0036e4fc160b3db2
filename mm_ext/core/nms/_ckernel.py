"""The compiled CPU kernel of NOH-NMS (``_kernel/noh_nms_kernel.c``), built on first use.

The kernel is the one-pick-at-a-time loop of the spec (no rounds): the overlapping pairs
come from a banded sweep over (label, band, x1), the next pick from the initial score order
and a max-heap of rescored boxes, so a call costs about O(N log N + P log P) with no per-step
Python or numpy overhead. Plain C11 + libm, built with the system C compiler on first use
and cached by :mod:`mm_ext.core._cbuild`; loaded with :mod:`ctypes`, called on numpy arrays.

If it cannot be built, :func:`load` warns once and returns None: the op then runs its
vectorised numpy path (same kept boxes). ``MM_EXT_NMS_KERNEL=0`` turns the kernel off.
"""
import ctypes
from pathlib import Path
from typing import Optional

import numpy as np

from .._cbuild import kernel_enabled, load_library

__all__ = ['load', 'enabled', 'noh_nms_numpy', 'overlap_pairs_numpy', 'ENV_VAR']

ENV_VAR = 'MM_EXT_NMS_KERNEL'
_SRC_DIR = Path(__file__).resolve().parent / '_kernel'
_VERSION = 3  # noh_nms_kernel_version() of a matching build
# -ffp-contract=off: no fused multiply-adds, so the arithmetic rounds as the numpy path's does
_CFLAGS = ['-O2', '-std=c11', '-fPIC', '-shared', '-ffp-contract=off', '-fno-fast-math']


def enabled() -> bool:
    """Whether the environment allows the kernel (``MM_EXT_NMS_KERNEL`` not ``0``)."""
    return kernel_enabled(ENV_VAR)


def _setup(lib) -> None:
    lib.noh_nms_kernel_version.restype = ctypes.c_int64
    if lib.noh_nms_kernel_version() != _VERSION:
        raise RuntimeError('the cached build is a different kernel version; delete it')
    p, i64, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
    for fn in (lib.noh_nms_f32, lib.noh_nms_f64):
        fn.restype = i64
        fn.argtypes = [i64, p, p, p, p, p, p, f64, f64, f64, f64, ctypes.c_int, p]
    for fn in (lib.overlap_pairs_f32, lib.overlap_pairs_f64):
        fn.restype = i64
        fn.argtypes = [i64, p, p, f64, ctypes.c_int, p, i64]


def load():
    """The loaded kernel library, building it if needed; None when off or unavailable."""
    return load_library('noh_nms', _SRC_DIR / 'noh_nms_kernel.c', _CFLAGS, ENV_VAR, _setup,
                        headers=[_SRC_DIR / 'noh_nms_body.h'])


def _ptr(a: Optional[np.ndarray]):
    return None if a is None else a.ctypes.data


def noh_nms_numpy(boxes: np.ndarray, cur: np.ndarray, alive: Optional[np.ndarray], labels: Optional[np.ndarray],
                  gate: Optional[np.ndarray], noh_boxes: Optional[np.ndarray], iou_threshold: float,
                  inv_two_var: float, flag_thr: float, min_score: float, legacy_offset: bool):
    """Run the kernel; None when it is unavailable (the caller falls back).

    ``boxes`` (N, 4) and ``cur`` (N,) float32 or float64 of one dtype (``cur`` is updated in
    place to the current scores), ``alive`` (N,) bool initial candidates or None (all),
    ``labels`` (N,) int or None, ``gate`` (N,) bool NOH active or None (plain greedy),
    ``noh_boxes`` (N, 4) in the boxes' dtype (read where ``gate``). Returns the kept
    indices (K,) int64 in pick order.
    """
    lib = load()
    if lib is None:
        return None
    fn = lib.noh_nms_f32 if boxes.dtype == np.float32 else lib.noh_nms_f64
    n = boxes.shape[0]
    boxes = np.ascontiguousarray(boxes)
    if alive is not None:
        alive = np.ascontiguousarray(alive, dtype=np.uint8)
    if labels is not None:
        labels = np.ascontiguousarray(labels, dtype=np.int64)
    if gate is not None:
        gate = np.ascontiguousarray(gate, dtype=np.uint8)
        noh_boxes = np.ascontiguousarray(noh_boxes, dtype=boxes.dtype)
    else:
        noh_boxes = None
    keep = np.empty(n, dtype=np.int64)
    k = fn(n, _ptr(boxes), _ptr(cur), _ptr(alive), _ptr(labels), _ptr(gate), _ptr(noh_boxes),
           float(iou_threshold), float(inv_two_var), float(flag_thr), float(min_score), int(bool(legacy_offset)),
           _ptr(keep))
    if k < 0:
        raise MemoryError(f'NOH-NMS kernel: out of memory for {n} boxes')
    return keep[:k]


def overlap_pairs_numpy(boxes: np.ndarray, iou_threshold: float, legacy_offset: bool = False,
                        labels: Optional[np.ndarray] = None):
    """The kernel's pair sweep alone (for tests): (2, P) int64 pairs (u < v) of boxes of one label
    with IoU > ``iou_threshold``, in no particular order; None when the kernel is unavailable."""
    lib = load()
    if lib is None:
        return None
    boxes = np.ascontiguousarray(boxes)
    fn = lib.overlap_pairs_f32 if boxes.dtype == np.float32 else lib.overlap_pairs_f64
    if labels is not None:
        labels = np.ascontiguousarray(labels, dtype=np.int64)
    out = np.empty((0, 2), dtype=np.int64)
    for _ in range(2):  # the second call with the exact size
        k = fn(boxes.shape[0], _ptr(boxes), _ptr(labels), float(iou_threshold), int(bool(legacy_offset)),
               _ptr(out), out.shape[0])
        if k < 0:
            raise MemoryError(f'NOH-NMS kernel: out of memory for {boxes.shape[0]} boxes')
        if k <= out.shape[0]:
            return out[:k].T
        out = np.empty((k, 2), dtype=np.int64)
    raise RuntimeError('overlap_pairs: the pair count changed between two calls')
