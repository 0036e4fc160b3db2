"""Stripe-wise pruned convolution (PFF, arXiv 2009.14410, Sec. 3.3 "stripe-wise convolution").

A K×K conv is a sum of K² shifted 1×1 convs, one per kernel position (i, j):

    Y[b, n, y, x] = Σ_{(n,i,j) alive} Σ_c W[n, c, i, j] · Xpad[b, c, y·s + i, x·s + j]

where Xpad is the input zero-padded by p. After pruning only the live stripes
``W[n, :, i, j]`` are stored (N' rows of C weights) and multiplied, so the work is
N'·C·B·H_out·W_out multiply-adds: it follows the kept FLOPs.
"""
import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['masked_conv2d', 'StripeConv2d', 'compute_dtype']


def masked_conv2d(x: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor, bias: Optional[torch.Tensor] = None,
                  stride: int = 1, padding: int = 0) -> torch.Tensor:
    """Reference: dense conv with dead stripes zeroed.

    Args:
        x (Tensor): (B, C, H, W).
        weight (Tensor): (N, C, K, K).
        mask (Tensor): (N, K, K) bool, True = stripe alive.
        bias (Tensor, optional): (N,).
        stride (int): stride. padding (int): zero padding on every side.

    Returns:
        Tensor: (B, N, H_out, W_out), H_out = (H + 2p - K) // s + 1.
    """
    return F.conv2d(x, weight * mask.to(weight.dtype).unsqueeze(1), bias, stride, padding)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a conv computes in: the autocast dtype inside ``torch.autocast`` for x's
    device type, else x's own dtype (so every form matches ``nn.Conv2d``)."""
    dev = x.device.type
    if torch.is_autocast_enabled(dev) and x.is_floating_point():
        return torch.get_autocast_dtype(dev)
    return x.dtype


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a channels-last 4-D tensor (that is not also plain contiguous), else
    ``torch.contiguous_format``."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _out_size(h: int, k: int, s: int, p: int) -> int:
    return (h + 2 * p - k) // s + 1


class StripeConv2d(nn.Module):
    """Stripe-wise pruned conv: only live stripes are stored and computed.

    Stripes are stored ordered by kernel position (i, j), then by filter n (the
    paper's "break" layout), as ``stripe_weight`` (N', C); ``stripe_mask`` (N, K, K)
    records which stripes live and rebuilds the layer from a state dict.

    Two exact implementations (same output up to float rounding):

    - ``'flat'``: the input is zero-padded once into a channel-major, polyphase
      layout (s² phases of shape (C, B·Hq·Wq)); per phase one GEMM computes all
      its stripes, and kernel position (i, j) becomes a constant offset in the
      flattened map, so each position's partial sums are added into the output
      rows of its filters with one ``index_add_``. Computes on the padded grid
      (extra work (Hq·Wq)/(H_out·W_out), small for large maps).
    - ``'gather'``: per position, the strided shifted input (C, B·H_out·W_out) is
      gathered and multiplied by that position's stripes; no padded-grid waste,
      better for small maps.
    - ``'nchw'``: as ``'flat'`` but per image: the stripes of a phase are one batched GEMM
      on the padded input's flattened Hq·Wq planes (NCHW or channels-last, no layout
      transposes), and position offsets live in each image's plane; the partial sums are
      added, a cache-sized chunk of images at a time, into an NCHW output initialised with
      the bias; the output is cropped into x's memory format in one copy.

    Args:
        in_channels (int): C.
        stripe_mask (Tensor): (N, K, K) bool, K odd.
        stride (int): s. Defaults to 1.
        padding (int): p. Defaults to 0.
        bias (bool): learnable bias (N,). Defaults to False.
        impl (str): ``'flat'`` or ``'gather'``. Defaults to ``'flat'``.
    """

    IMPLS = ('flat', 'gather', 'nchw')
    CHUNK_BYTES = 4 << 20  # 'nchw': partial sums of at most this size per batch chunk

    def __init__(self, in_channels: int, stripe_mask: torch.Tensor, stride: int = 1, padding: int = 0,
                 bias: bool = False, impl: str = 'flat', dtype=None, device=None):
        super().__init__()
        if stripe_mask.dim() != 3 or stripe_mask.shape[1] != stripe_mask.shape[2]:
            raise ValueError(f'stripe_mask must be (N, K, K); got {tuple(stripe_mask.shape)}')
        self.in_channels = int(in_channels)
        self.out_channels = int(stripe_mask.shape[0])
        self.kernel_size = int(stripe_mask.shape[1])
        self.stride = int(stride)
        self.padding = int(padding)
        self.impl = impl
        mask = stripe_mask.detach().to(device=device, dtype=torch.bool).clone()
        self.register_buffer('stripe_mask', mask)
        n_live = int(mask.sum())
        self.stripe_weight = nn.Parameter(torch.zeros(n_live, self.in_channels, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(self.out_channels, dtype=dtype, device=device)) if bias else None
        self._plan_key = None

    @classmethod
    def from_dense(cls, weight: torch.Tensor, stripe_mask: torch.Tensor, bias: Optional[torch.Tensor] = None,
                   stride: int = 1, padding: int = 0, **kwargs) -> 'StripeConv2d':
        """Build from a dense weight (N, C, K, K); dead stripes are dropped."""
        if weight.shape[0] != stripe_mask.shape[0] or weight.shape[2:] != stripe_mask.shape[1:]:
            raise ValueError(f'weight {tuple(weight.shape)} does not match stripe_mask {tuple(stripe_mask.shape)}')
        m = cls(weight.shape[1], stripe_mask, stride, padding, bias is not None, dtype=weight.dtype,
                device=weight.device, **kwargs)
        with torch.no_grad():
            m.stripe_weight.copy_(cls._gather_stripes(weight, m.stripe_mask))
            if bias is not None:
                m.bias.copy_(bias)
        return m

    @staticmethod
    def _gather_stripes(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # (N, C, K, K) -> (K, K, N, C) -> rows of live stripes, position-major
        return weight.detach().permute(2, 3, 0, 1)[mask.permute(1, 2, 0)].contiguous()

    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense weight (N, C, K, K) with zeros at dead stripes (differentiable)."""
        k, n = self.kernel_size, self.out_channels
        w = self.stripe_weight.new_zeros(k, k, n, self.in_channels)
        w = w.index_put((*self.stripe_mask.permute(1, 2, 0).nonzero(as_tuple=True), ), self.stripe_weight)
        return w.permute(2, 3, 0, 1)

    # ------------------------------------------------------------------ plan
    def _plan(self) -> List[Tuple[int, int, int, int, torch.Tensor, Optional[Tuple[int, int]]]]:
        """Per live kernel position: (i, j, row_start, row_end, filter_index (n_ij,), contiguous range)."""
        key = (self.stripe_mask.data_ptr(), self.stripe_mask.device)
        if self._plan_key == key:
            return self._plan_cache
        k = self.kernel_size
        plan, row = [], 0
        for i in range(k):
            for j in range(k):
                idx = self.stripe_mask[:, i, j].nonzero().flatten()
                cnt = idx.numel()
                if cnt:
                    first, last = int(idx[0]), int(idx[-1])
                    rng = (first, last + 1) if last - first + 1 == cnt else None
                    plan.append((i, j, row, row + cnt, idx, rng))
                row += cnt
        self._plan_cache, self._plan_key = plan, key
        return plan

    @property
    def num_stripes(self) -> int:
        return self.stripe_weight.shape[0]

    # --------------------------------------------------------------- forward
    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__}: expected input (B, {self.in_channels}, H, W), '
                             f'got {tuple(x.shape)}')

    def _stripe_forward(self, x: torch.Tensor, impl: str) -> torch.Tensor:
        if impl == 'flat':
            y = self._forward_flat(x)
        elif impl == 'gather':
            y = self._forward_gather(x)
        elif impl == 'nchw':
            return self._forward_nchw(x, self.bias)  # the bias is the output's initial value
        else:
            raise ValueError(f"{type(self).__name__}: impl must be one of {self.IMPLS}, got {impl!r}")
        if self.bias is not None:
            y = y + self.bias.to(y.dtype).view(1, -1, 1, 1)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, N, H_out, W_out), H_out = (H + 2p - K) // s + 1.

        Computes in :func:`compute_dtype` (x's dtype, or the autocast dtype under autocast).
        """
        self._check_input(x)
        return self._stripe_forward(x.to(compute_dtype(x)), self.impl)

    def _forward_flat(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        k, s, p, n = self.kernel_size, self.stride, self.padding, self.out_channels
        ho, wo = _out_size(h, k, s, p), _out_size(w, k, s, p)
        hq, wq = math.ceil((h + 2 * p) / s), math.ceil((w + 2 * p) / s)
        length = b * hq * wq
        weight = self.stripe_weight.to(x.dtype)
        xpad = x.new_zeros(c, b, hq * s, wq * s)
        xpad[:, :, p:p + h, p:p + w] = x.transpose(0, 1)
        if s == 1:
            phases = xpad.view(1, 1, c, length)
        else:
            phases = xpad.view(c, b, hq, s, wq, s).permute(3, 5, 0, 1, 2, 4).reshape(s, s, c, length)
        out = x.new_zeros(n, length)
        for (a, bb), entries in self._phase_entries(s).items():
            r0, r1 = entries[0][2], entries[-1][3]
            rows = torch.cat([torch.arange(e[2], e[3], device=x.device) for e in entries]) \
                if any(entries[t][3] != entries[t + 1][2] for t in range(len(entries) - 1)) else None
            wph = weight[r0:r1] if rows is None else weight[rows]
            z = wph @ phases[a, bb]  # (n_phase, L)
            zr = 0
            for i, j, e0, e1, idx, rng in entries:
                off = (i // s) * wq + (j // s)
                cnt = e1 - e0
                src = z[zr:zr + cnt, off:]
                if rng is not None:
                    out[rng[0]:rng[1], :length - off] += src
                else:
                    out[:, :length - off].index_add_(0, idx, src)
                zr += cnt
        return out.view(n, b, hq, wq)[:, :, :ho, :wo].permute(1, 0, 2, 3).contiguous()

    def _phase_entries(self, s: int):
        by_phase: Dict[Tuple[int, int], list] = {}
        for entry in self._plan():
            by_phase.setdefault((entry[0] % s, entry[1] % s), []).append(entry)
        return by_phase

    def _forward_nchw(self, x: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, c, h, w = x.shape
        k, s, p, n = self.kernel_size, self.stride, self.padding, self.out_channels
        ho, wo = _out_size(h, k, s, p), _out_size(w, k, s, p)
        hq, wq = math.ceil((h + 2 * p) / s), math.ceil((w + 2 * p) / s)
        plane = hq * wq
        weight = self.stripe_weight.to(x.dtype)
        # padded once in x's own memory format (no layout change); the per-phase 1x1 products are one
        # batched GEMM each on the flattened planes, (n_phase, C) @ (B, C, Hq*Wq), whatever the layout
        xpad = F.pad(x, (p, wq * s - w - p, p, hq * s - h - p))
        if bias is None:
            out = x.new_zeros(b, n, plane)
        else:
            out = bias.to(x.dtype).view(1, n, 1).expand(b, n, plane).contiguous()
        for (a, bb), entries in self._phase_entries(s).items():
            xph = (xpad if s == 1 else xpad[:, :, a::s, bb::s]).flatten(2)
            r0, r1 = entries[0][2], entries[-1][3]
            contiguous_rows = all(entries[t][3] == entries[t + 1][2] for t in range(len(entries) - 1))
            wph = weight[r0:r1] if contiguous_rows else \
                weight[torch.cat([torch.arange(e[2], e[3], device=x.device) for e in entries])]
            # images in chunks whose partial sums stay cache-sized (and below the allocator's mmap size)
            chunk = max(1, self.CHUNK_BYTES // max(1, wph.shape[0] * plane * x.element_size()))
            for b0 in range(0, b, chunk):
                xb = xph[b0:b0 + chunk]
                z = torch.bmm(wph.expand(xb.shape[0], -1, -1), xb)  # (chunk, n_phase, plane)
                o = out[b0:b0 + chunk]
                zr = 0
                for i, j, e0, e1, idx, rng in entries:
                    off = (i // s) * wq + (j // s)
                    cnt = e1 - e0
                    src = z[:, zr:zr + cnt, off:]
                    if rng is not None:
                        o[:, rng[0]:rng[1], :plane - off] += src
                    else:
                        o[:, :, :plane - off].index_add_(1, idx, src)
                    zr += cnt
        # crop and layout in one copy: the output takes x's memory format
        return out.view(b, n, hq, wq)[:, :, :ho, :wo].contiguous(memory_format=_memory_format(x))

    def _forward_gather(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        k, s, p, n = self.kernel_size, self.stride, self.padding, self.out_channels
        ho, wo = _out_size(h, k, s, p), _out_size(w, k, s, p)
        m = b * ho * wo
        weight = self.stripe_weight.to(x.dtype)
        xpad = x.new_zeros(c, b, h + 2 * p, w + 2 * p)
        xpad[:, :, p:p + h, p:p + w] = x.transpose(0, 1)
        out = x.new_zeros(n, m)
        for i, j, e0, e1, idx, rng in self._plan():
            xs = xpad[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s].reshape(c, m)
            if rng is not None:
                out[rng[0]:rng[1]].addmm_(weight[e0:e1], xs)
            else:
                out.index_add_(0, idx, weight[e0:e1] @ xs)
        return out.view(n, b, ho, wo).permute(1, 0, 2, 3).contiguous()

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, '
                f'padding={self.padding}, stripes={self.num_stripes}/{self.stripe_mask.numel()}, '
                f'bias={self.bias is not None}, impl={self.impl!r}')
