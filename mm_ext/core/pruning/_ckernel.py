"""The compiled CPU kernel of :class:`PrunedConv2d`'s ``'fused'`` form (``_kernel/stripe_conv_kernel.c``).

One call computes a whole stripe-pruned conv: only live stripes are multiplied, every
product is accumulated in registers (no shifted copies, partial-sum maps or scatter), the
zero padding, the polyphase split of a strided conv and the input/output memory layouts
are handled inside (strides are passed). Plain C with GCC/Clang vector extensions (no
Python or torch headers), built with ``-march=native`` (the CPU's feature flags are part of
the cache key) and OpenMP where the compiler has it, on first use, cached and loaded by
:mod:`mm_ext.core._cbuild`.

If it cannot be built, :func:`load` returns None (``_cbuild`` warns once) and the ``'fused'``
form runs the ``'nchw'`` stripe form (same values). ``MM_EXT_PFF_KERNEL=0`` turns the kernel
off (read at the first use).
"""
import ctypes
import hashlib
import platform
import warnings
from pathlib import Path
from typing import Optional, Tuple

import torch

from .._cbuild import kernel_enabled, load_library
from .stripe_conv import _memory_format

__all__ = ['load', 'enabled', 'fused_tables', 'fused_conv', 'ENV_VAR']

ENV_VAR = 'MM_EXT_PFF_KERNEL'
_SRC = Path(__file__).resolve().parent / '_kernel' / 'stripe_conv_kernel.c'
_VERSION = 1  # pff_stripe_kernel_version() of a matching build
_CFLAGS = ['-O3', '-funroll-loops', '-std=gnu11', '-fPIC', '-shared', '-march=native']
GROUP = 4  # filters per microkernel group (the C kernel has 1-, 2-, 3- and 4-filter microkernels)

_lib = None
_tried = False


def enabled() -> bool:
    """Whether the environment allows the kernel (``MM_EXT_PFF_KERNEL`` not ``0``)."""
    return kernel_enabled(ENV_VAR)


def _cpu_tag() -> str:
    """A hash of the CPU's feature flags: a ``-march=native`` build only runs where it was built."""
    flags = ''
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((line for line in f if line.startswith(('flags', 'Features'))), '')
    except OSError:
        pass
    return hashlib.sha1((flags or platform.processor() or platform.machine()).encode()).hexdigest()[:8]


def _setup(lib: ctypes.CDLL) -> None:
    lib.pff_stripe_kernel_version.restype = ctypes.c_int64
    if lib.pff_stripe_kernel_version() != _VERSION:
        raise RuntimeError(f'{lib._name} is a different kernel version; delete it')
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    fn = lib.pff_stripe_conv_f32
    fn.restype = ctypes.c_int
    fn.argtypes = [p] + [i64] * 8 + [i64] * 3 + [i64, i64] + [p] * 6 + [p] + [i64] * 6 + [i64] * 3


def load() -> Optional[ctypes.CDLL]:
    """The loaded kernel library, building it if needed (with OpenMP, else without); None when off
    or unavailable. The result is kept: ``forward`` does not read the environment again."""
    global _lib, _tried
    if _tried:
        return _lib
    tag = _cpu_tag()
    with warnings.catch_warnings():  # a compiler without OpenMP: the serial build below is tried
        warnings.simplefilter('ignore', RuntimeWarning)
        lib = load_library('pff_stripe', _SRC, _CFLAGS + ['-fopenmp'], ENV_VAR, _setup, tag=tag)
    if lib is None and enabled():
        lib = load_library('pff_stripe_serial', _SRC, _CFLAGS, ENV_VAR, _setup, tag=tag)
    _lib, _tried = lib, True
    return lib


@torch.no_grad()
def fused_tables(dense_weight: torch.Tensor, stripe_mask: torch.Tensor,
                 bias: Optional[torch.Tensor] = None) -> Tuple[Optional[torch.Tensor], ...]:
    """The kernel's weight tables for a conv with weight (N, C, K, K) (dead stripes zero), mask (N, K, K)
    and optional bias (N,).

    Live stripes are grouped by kernel position, up to :data:`GROUP` filters a group (filters in
    index order), so that one input vector feeds every filter of a group.

    Returns:
        tuple: ``gsize`` (G,) filters per group, ``gpos`` (G,) kernel position i·K + j, ``gfil``
        (G, 4) filter indices (unused slots 0), ``gw`` (G,) offset of the group's weights in ``wt``,
        ``wt`` (float32, C × F per group, channel-major), ``bias`` (float32 (N,) or None) — int64
        tables, all contiguous on the CPU.
    """
    n, c, k, _ = dense_weight.shape
    w = dense_weight.detach().to('cpu', torch.float32)
    mask = stripe_mask.to('cpu')
    gsize, gpos, gfil, gw, parts = [], [], [], [], []
    off = 0
    for t in range(k * k):
        i, j = divmod(t, k)
        live = mask[:, i, j].nonzero().flatten().tolist()
        for a in range(0, len(live), GROUP):
            fs = live[a:a + GROUP]
            gsize.append(len(fs))
            gpos.append(t)
            gfil.append(fs + [0] * (GROUP - len(fs)))
            gw.append(off)
            parts.append(w[fs, :, i, j].t().reshape(-1))
            off += len(fs) * c
    i64 = torch.int64
    return (torch.tensor(gsize, dtype=i64), torch.tensor(gpos, dtype=i64),
            torch.tensor(gfil, dtype=i64).reshape(-1, GROUP), torch.tensor(gw, dtype=i64),
            torch.cat(parts).contiguous() if parts else torch.zeros(1),
            None if bias is None else bias.detach().to('cpu', torch.float32).contiguous())


def fused_conv(x: torch.Tensor, tables: Tuple[Optional[torch.Tensor], ...], out_channels: int, kernel_size: int,
               stride: int, padding: int, relu: bool = False) -> Optional[torch.Tensor]:
    """The stripe conv of ``x`` (B, C, H, W) float32 on the CPU, any strides, with the tables of
    :func:`fused_tables` (bias included); the output (B, N, H_out, W_out) takes x's memory format.
    None when the kernel is unavailable (the caller falls back)."""
    lib = _lib if _tried else load()
    if lib is None:
        return None
    b, c, h, w = x.shape
    k, s, p = kernel_size, stride, padding
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = torch.empty(b, out_channels, ho, wo, dtype=torch.float32, memory_format=_memory_format(x))
    gsize, gpos, gfil, gw, wt, bias = tables
    # images in vector lanes for maps narrower than a vector (when there are images enough), else columns
    mode = 1 if wo < 8 and b >= 8 else 0
    xs, os_ = x.stride(), out.stride()
    rc = lib.pff_stripe_conv_f32(x.data_ptr(), b, c, h, w, xs[0], xs[1], xs[2], xs[3], k, s, p, out_channels,
                                 gsize.numel(), gsize.data_ptr(), gpos.data_ptr(), gfil.data_ptr(), gw.data_ptr(),
                                 wt.data_ptr(), None if bias is None else bias.data_ptr(), out.data_ptr(), ho, wo,
                                 os_[0], os_[1], os_[2], os_[3], mode, int(relu), torch.get_num_threads())
    if rc != 0:
        raise MemoryError(f'PFF stripe-conv kernel: out of memory for input {tuple(x.shape)}')
    return out
