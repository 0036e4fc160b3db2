"""The compiled CPU kernel of NOH-NMS (``_kernel/noh_nms_kernel.c``), built on first use.

The kernel is the one-pick-at-a-time loop of the spec (no rounds): the overlapping pairs
come from a sweep over x1, the next pick from a max-heap, so a call costs about
O((N + P) log N) with no per-step Python or numpy overhead. It is plain C99 + libm
(no Python or torch headers), compiled with the system C compiler in well under a
second the first time it is needed, and cached under ``$MM_EXT_CACHE/kernels``
(default ``~/.cache/mm-ext/kernels``; the file name carries a hash of the source, so an
edited kernel is rebuilt). It is loaded with :mod:`ctypes` and called on numpy arrays.

If no compiler is found or the build fails, :func:`load` warns once and returns None:
the op then runs its vectorised numpy path (same results). ``MM_EXT_NMS_KERNEL=0`` turns
the kernel off (``=1``, the default, uses it when it can be built).
"""
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ['load', 'enabled', 'noh_nms_numpy', 'overlap_pairs_numpy', 'ENV_VAR']

ENV_VAR = 'MM_EXT_NMS_KERNEL'
_SRC_DIR = Path(__file__).resolve().parent / '_kernel'
_SOURCES = ('noh_nms_kernel.c', 'noh_nms_body.h')
_VERSION = 3  # noh_nms_kernel_version() of a matching build
# -ffp-contract=off: no fused multiply-adds, so the arithmetic rounds as the numpy path's does
_CFLAGS = ['-O2', '-std=c11', '-fPIC', '-shared', '-ffp-contract=off', '-fno-fast-math']

_lock = threading.Lock()
_lib = None
_tried = False


def enabled() -> bool:
    """Whether the environment allows the kernel (``MM_EXT_NMS_KERNEL`` not ``0``)."""
    return os.environ.get(ENV_VAR, '1').strip().lower() not in ('0', 'false', 'no', 'off')


def _cache_dir() -> Path:
    root = os.environ.get('MM_EXT_CACHE') or os.path.join(os.path.expanduser('~'), '.cache', 'mm-ext')
    return Path(root) / 'kernels'


def _build(target: Path) -> None:
    """Compile the kernel to ``target`` (written to a temporary name, then renamed)."""
    cc = os.environ.get('CC') or shutil.which('cc') or shutil.which('gcc') or shutil.which('clang')
    if not cc:
        raise RuntimeError('no C compiler found (set CC, or install gcc)')
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.stem + '.', suffix='.tmp', dir=target.parent)
    os.close(fd)
    try:
        cmd = [cc, *_CFLAGS, '-o', tmp, str(_SRC_DIR / _SOURCES[0]), '-lm']
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f'{" ".join(cmd)} failed:\n{res.stderr[-2000:]}')
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load():
    """The loaded kernel library, building it if needed; None when off or unavailable."""
    global _lib, _tried
    if not enabled():
        return None
    if _tried:
        return _lib
    with _lock:
        if _tried:
            return _lib
        try:
            digest = hashlib.sha1(b''.join((_SRC_DIR / s).read_bytes() for s in _SOURCES)
                                  + ' '.join(_CFLAGS).encode()).hexdigest()[:16]
            target = _cache_dir() / f'noh_nms-{digest}-{sys.platform}-{platform.machine()}.so'
            if not target.exists():
                _build(target)
            lib = ctypes.CDLL(str(target))
            lib.noh_nms_kernel_version.restype = ctypes.c_int64
            if lib.noh_nms_kernel_version() != _VERSION:
                raise RuntimeError(f'{target} is a different kernel version; delete it')
            p, i64, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
            for fn in (lib.noh_nms_f32, lib.noh_nms_f64):
                fn.restype = i64
                fn.argtypes = [i64, p, p, p, p, p, p, f64, f64, f64, f64, ctypes.c_int, p]
            for fn in (lib.overlap_pairs_f32, lib.overlap_pairs_f64):
                fn.restype = i64
                fn.argtypes = [i64, p, p, f64, ctypes.c_int, p, i64]
            _lib = lib
        except Exception as e:  # no compiler, read-only cache, ...: the numpy path runs instead
            warnings.warn(f'mm_ext NOH-NMS: the compiled CPU kernel is unavailable ({e}); using the '
                          f'vectorised numpy path (same results, slower). Set {ENV_VAR}=0 to silence this.',
                          RuntimeWarning, stacklevel=3)
            _lib = None
        _tried = True
    return _lib


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
