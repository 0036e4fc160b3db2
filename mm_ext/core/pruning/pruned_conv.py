"""Pruned conv that runs in its fastest exact form, chosen per input shape by measuring once."""
import time
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from .stripe_conv import StripeConv2d

__all__ = ['PrunedConv2d']


class PrunedConv2d(StripeConv2d):
    """Stripe-pruned conv with a per-layer choice of execution form.

    Stores only live stripes (as :class:`StripeConv2d`) and runs as one of:

    - ``'dense'``: a dense conv (oneDNN/cuDNN) on the channel-pruned weight with dead
      stripes zeroed and the kernel cropped to the centred box that still holds a
      live stripe (e.g. 3×3 -> 1×1 when only centre stripes survive);
    - ``'flat'`` / ``'gather'`` / ``'nchw'``: the stripe-wise forms of :class:`StripeConv2d`;
    - ``'auto'`` (default): on the first call for an input shape/dtype/device, time
      every form on that input (no grad) and keep the fastest for that shape. Dense
      is always a candidate, so the layer is never (measurably) slower than the
      channel-pruned dense conv. With autograd enabled ``'auto'`` uses ``'dense'``.

    Args:
        *args, **kwargs: as :class:`StripeConv2d`.
        form (str): one of ``FORMS``. Defaults to ``'auto'``.
        timing_repeats (int): timed round-robin runs per form (best kept). Defaults to 3.
        stripe_margin (float): a stripe form is chosen only when it beats dense by this
            fraction. Defaults to 0.05.

    Note:
        The choice is cached in the (non-persistent) attribute ``choices``,
        keyed by ``(B, H, W, dtype, device)``; call :meth:`reset_choices` after
        moving the model to another machine.
    """

    FORMS = ('auto', 'dense', 'flat', 'gather', 'nchw')

    def __init__(self, *args, form: str = 'auto', timing_repeats: int = 3, stripe_margin: float = 0.05, **kwargs):
        super().__init__(*args, **kwargs)
        if form not in self.FORMS:
            raise ValueError(f'PrunedConv2d: form must be one of {self.FORMS}, got {form!r}')
        self.form = form
        self.timing_repeats = timing_repeats
        self.stripe_margin = stripe_margin
        self.choices: Dict[Tuple, str] = {}
        self._dense_cache: Optional[Tuple] = None

    def reset_choices(self) -> None:
        self.choices.clear()
        self._dense_cache = None

    def box_radius(self) -> int:
        """Half-size d of the centred box (2d+1)² that contains every live stripe (0 if none)."""
        p = self.kernel_size // 2
        pos = self.stripe_mask.any(0).nonzero()
        return int((pos - p).abs().max()) if pos.numel() else 0

    def _dense_weight_cropped(self, dtype) -> Tuple[torch.Tensor, int]:
        if torch.is_grad_enabled() and self.stripe_weight.requires_grad:
            d = self.box_radius()
            c = self.kernel_size // 2
            return self.dense_weight()[:, :, c - d:c + d + 1, c - d:c + d + 1].to(dtype), d
        key = (self.stripe_weight._version, self.stripe_weight.data_ptr(), dtype)
        if self._dense_cache is None or self._dense_cache[0] != key:
            with torch.no_grad():
                d = self.box_radius()
                c = self.kernel_size // 2
                w = self.dense_weight()[:, :, c - d:c + d + 1, c - d:c + d + 1].to(dtype).contiguous()
            self._dense_cache = (key, w, d)
        return self._dense_cache[1], self._dense_cache[2]

    def _forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        w, d = self._dense_weight_cropped(x.dtype)
        k, s, p = self.kernel_size, self.stride, self.padding
        # a centred (2d+1) box with padding p - (K//2 - d) gives the same output grid
        pad = p - (k // 2 - d)
        if pad >= 0:
            y = F.conv2d(x, w, None, s, pad)
        else:  # padding smaller than K//2: crop the input instead
            x = x[:, :, -pad:x.shape[2] + pad, -pad:x.shape[3] + pad]
            y = F.conv2d(x, w, None, s, 0)
        return y

    def _run(self, form: str, x: torch.Tensor) -> torch.Tensor:
        if form == 'dense':
            y = self._forward_dense(x)
            return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
        self.impl = form
        return super().forward(x)

    def _choose(self, x: torch.Tensor) -> str:
        key = (x.shape[0], x.shape[2], x.shape[3], x.dtype, x.device)
        form = self.choices.get(key)
        if form is None:
            cands = ('dense', 'flat', 'gather', 'nchw')
            for cand in cands:
                self._run(cand, x)  # warm-up (plans, caches, allocator)
            times = {c: [] for c in cands}
            for _ in range(self.timing_repeats):  # round-robin, so a load spike hits every form alike
                for cand in cands:
                    if x.is_cuda:
                        torch.cuda.synchronize(x.device)
                    t0 = time.perf_counter()
                    self._run(cand, x)
                    if x.is_cuda:
                        torch.cuda.synchronize(x.device)
                    times[cand].append(time.perf_counter() - t0)
            # best of the round-robin runs (robust to background load); a stripe form must win clearly
            best = {c: min(t) * (1.0 if c == 'dense' else 1.0 + self.stripe_margin) for c, t in times.items()}
            form = self.choices[key] = min(best, key=best.get)
        return form

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, N, H_out, W_out)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'PrunedConv2d: expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}')
        form = self.form
        if form == 'auto':
            if torch.is_grad_enabled() and (x.requires_grad or self.stripe_weight.requires_grad):
                form = 'dense'
            else:
                with torch.no_grad():
                    form = self._choose(x)
        return self._run(form, x)

    def extra_repr(self) -> str:
        return super().extra_repr().replace(f', impl={self.impl!r}', f', form={self.form!r}')
