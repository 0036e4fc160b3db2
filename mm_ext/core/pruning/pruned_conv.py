"""Pruned conv whose execution form is chosen once at export and stored with the weights."""
import time
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import _ckernel
from .stripe_conv import StripeConv2d, _memory_format, compute_dtype

__all__ = ['PrunedConv2d', 'choose_forms']


class PrunedConv2d(StripeConv2d):
    """Stripe-pruned conv with a stored per-layer execution form.

    Stores only live stripes (as :class:`StripeConv2d`) and runs as one of:

    - ``'dense'``: a dense conv (oneDNN/cuDNN) over the *live filters only*, with dead
      stripes zeroed and the kernel cropped to the centred box (rows and columns
      separately) that still holds a live stripe (e.g. 3×3 -> 1×3 when the top and bottom
      rows died); the outputs of dead filters are written as zeros (what the layer
      computes for them), so a residual-coupled conv followed by its BN still yields the
      dead filters' BN constants while computing only its live filters;
    - ``'full'``: the same cropped dense conv over *every* filter (dead ones have zero weights
      and output their bias): no scatter of the live filters into the output, which costs more
      than the dead filters' FLOPs when few filters died (e.g. residual-coupled convs);
    - ``'flat'`` / ``'gather'`` / ``'nchw'``: the stripe-wise forms of :class:`StripeConv2d`;
    - ``'fused'``: the compiled CPU kernel of :mod:`._ckernel`: one pass per layer that multiplies
      only the live stripes, grouped by kernel position (up to 4 filters share each loaded input
      vector) and accumulated in registers, with padding, stride and memory layouts handled
      inside: no shifted copies, partial-sum maps or scatter. It runs for float32 CPU inference
      (under ``torch.no_grad()`` / ``torch.inference_mode()``, or with frozen weights); otherwise
      (autograd, other dtypes or devices, no C compiler) it runs ``'nchw'`` (same values).

    Every form returns its output in the input's memory format (``torch.channels_last`` in,
    channels-last out; the dense forms then run oneDNN's channels-last convs, and pooling
    stays on its channels-last kernels: on CPU both are several times faster than NCHW for
    the narrow convs of CIFAR nets).

    The form is stored in the state dict (buffer ``form_index``, an index into ``FORMS``); it is
    chosen once by :func:`choose_forms` at export (never by timing inside ``forward``),
    so inference is deterministic and traceable. Every form follows the input's device
    and dtype and, under ``torch.autocast``, computes in the autocast dtype.

    Args:
        *args, **kwargs: as :class:`StripeConv2d`.
        form (str): one of ``FORMS``. Defaults to ``'dense'``.
    """

    FORMS = ('dense', 'flat', 'gather', 'nchw', 'full', 'fused')  # append only: form_index is stored

    def __init__(self, *args, form: str = 'dense', **kwargs):
        super().__init__(*args, **kwargs)
        # the form travels in the state dict as a tensor (index into FORMS), so DDP can broadcast it
        self.register_buffer('form_index', torch.tensor(self.FORMS.index(self._check_form(form))))
        self._form = form
        self._dense_cache: Optional[dict] = None
        self._fused_cache: Optional[tuple] = None

    @classmethod
    def _check_form(cls, form: str) -> str:
        if form not in cls.FORMS:
            raise ValueError(f'PrunedConv2d: form must be one of {cls.FORMS}, got {form!r} '
                             "(choose the fastest one at export with choose_forms())")
        return form

    # ------------------------------------------------------------ state
    @property
    def form(self) -> str:
        return self._form

    @form.setter
    def form(self, value: str) -> None:
        self._form = self._check_form(value)
        self.form_index.fill_(self.FORMS.index(value))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        i = int(self.form_index)
        if not 0 <= i < len(self.FORMS):
            raise ValueError(f'PrunedConv2d: {prefix}form_index={i} is not an index into {self.FORMS}')
        self._form = self.FORMS[i]

    # ------------------------------------------------------------ dense form
    def crop_radii(self) -> Tuple[int, int]:
        """Half-sizes (dh, dw) of the centred (2dh+1)×(2dw+1) box holding every live stripe (0 if none)."""
        c = self.kernel_size // 2
        pos = self.stripe_mask.any(0).nonzero()
        if not pos.numel():
            return 0, 0
        return int((pos[:, 0] - c).abs().max()), int((pos[:, 1] - c).abs().max())

    def box_radius(self) -> int:
        """Half-size d of the centred square box (2d+1)² that contains every live stripe (0 if none)."""
        return max(self.crop_radii())

    def live_filters(self) -> torch.Tensor:
        """Indices (N_live,) of filters with at least one live stripe."""
        return self.stripe_mask.flatten(1).any(1).nonzero().flatten()

    def _weights_key(self) -> Tuple:
        """Changes when the stripe weights (in place or replaced) or the mask change: the caches' key."""
        return self.stripe_weight._version, self.stripe_weight.data_ptr(), self.stripe_mask.data_ptr()

    def _dense_parts(self, dtype, memory_format=torch.contiguous_format, every_filter: bool = False
                     ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Tuple[int, int]]:
        """(weight (N_live, C, 2dh+1, 2dw+1) in ``memory_format``, live index or None when every
        filter is computed, (dh, dw)); ``every_filter``: all N filters (dead ones zero)."""

        def build():
            dh, dw = self.crop_radii()
            c = self.kernel_size // 2
            live = self.live_filters()
            w = self.dense_weight()[:, :, c - dh:c + dh + 1, c - dw:c + dw + 1]
            idx = None if every_filter or live.numel() == self.out_channels else live
            if idx is not None:
                w = w.index_select(0, idx)
            return w.to(dtype).contiguous(memory_format=memory_format), idx, (dh, dw)

        if torch.is_grad_enabled() and self.stripe_weight.requires_grad:
            return build()  # differentiable (fine-tuning)
        key = self._weights_key() + (dtype, memory_format, every_filter)
        cache = self._dense_cache if isinstance(self._dense_cache, dict) else {}
        if key not in cache:
            with torch.no_grad():
                cache = {k: v for k, v in cache.items() if k[:3] == key[:3]}  # drop stale weights
                cache[key] = build()
            self._dense_cache = cache
        return cache[key]

    def _forward_dense(self, x: torch.Tensor, every_filter: bool = False) -> torch.Tensor:
        """Dense form including the bias; dead filters output their bias (0 without one)."""
        fmt = _memory_format(x)
        w, idx, (dh, dw) = self._dense_parts(x.dtype, fmt, every_filter)
        k, s, p = self.kernel_size, self.stride, self.padding
        b, _, h, wd = x.shape
        ho, wo = (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1
        bias = None if self.bias is None else self.bias.to(x.dtype)
        if w.shape[0] == 0:
            out = torch.zeros(b, self.out_channels, ho, wo, dtype=x.dtype, device=x.device, memory_format=fmt)
            return out if bias is None else out.add_(bias.view(1, -1, 1, 1))
        # a centred box with padding p - (K//2 - d) gives the same output grid; crop the input when negative
        ph, pw = p - (k // 2 - dh), p - (k // 2 - dw)
        if ph < 0 or pw < 0:
            ch, cw = max(0, -ph), max(0, -pw)
            x = x[:, :, ch:h - ch, cw:wd - cw]
            ph, pw = max(0, ph), max(0, pw)
        if idx is None:
            return F.conv2d(x, w, bias, s, (ph, pw))
        y = F.conv2d(x, w, None if bias is None else bias[idx], s, (ph, pw))
        shape = (b, self.out_channels, y.shape[2], y.shape[3])
        # dead filters: their bias (e.g. a folded BN's constant), written once; live filters copied in
        out = torch.empty(shape, dtype=y.dtype, device=y.device, memory_format=fmt)
        if bias is None:
            out.zero_()
        else:
            out.copy_(bias.view(1, -1, 1, 1).expand(shape))
        return out.index_copy_(1, idx, y)

    # ------------------------------------------------------------ fused form
    def fused_runs_kernel(self, x: torch.Tensor) -> bool:
        """Whether ``'fused'`` runs the compiled kernel on x (else it runs ``'nchw'``): float32 CPU
        inference (no autograd through the layer) with the kernel available."""
        return self._kernel_applies(x.to(compute_dtype(x))) and _ckernel.load() is not None

    def _kernel_applies(self, x: torch.Tensor) -> bool:
        """x already in the compute dtype."""
        if x.dtype is not torch.float32 or x.device.type != 'cpu' or self.stripe_weight.device.type != 'cpu':
            return False
        return not torch.is_grad_enabled() or not (x.requires_grad or self.stripe_weight.requires_grad or
                                                    (self.bias is not None and self.bias.requires_grad))

    def _fused_tables(self):
        key = self._weights_key() + (None if self.bias is None else (self.bias._version, self.bias.data_ptr()),)
        cache = self._fused_cache
        if cache is None or cache[0] != key:
            cache = self._fused_cache = (key, _ckernel.fused_tables(self.dense_weight(), self.stripe_mask, self.bias))
        return cache[1]

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """x in the compute dtype."""
        if self._kernel_applies(x):
            y = _ckernel.fused_conv(x, self._fused_tables(), self.out_channels, self.kernel_size, self.stride,
                                    self.padding)
            if y is not None:
                return y
        return self._stripe_forward(x, 'nchw').contiguous(memory_format=_memory_format(x))

    def run_form(self, form: str, x: torch.Tensor) -> torch.Tensor:
        """Output of ``form`` on x (B, C, H, W), whatever the stored form."""
        dt = compute_dtype(x)
        if x.dtype is not dt:
            x = x.to(dt)
        if form in ('dense', 'full'):
            return self._forward_dense(x, every_filter=form == 'full')
        if form == 'fused':
            return self._forward_fused(x)
        return self._stripe_forward(x, self._check_form(form)).contiguous(memory_format=_memory_format(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, N, H_out, W_out)."""
        self._check_input(x)
        return self.run_form(self.form, x)

    def extra_repr(self) -> str:
        return super().extra_repr().replace(f', impl={self.impl!r}', f', form={self.form!r}')


@torch.no_grad()
def choose_forms(model: nn.Module, example_input: torch.Tensor, forward=None, repeats: int = 3,
                 stripe_margin: float = 0.05) -> Dict[str, str]:
    """Time every form of each :class:`PrunedConv2d` of ``model`` on its own input and store the fastest.

    Runs once at export: the model is run on ``example_input`` to capture each layer's
    input, then every form is timed round-robin on that input (best of ``repeats``); a torch
    stripe form (``'flat'``, ``'gather'``, ``'nchw'``) must beat the others by ``stripe_margin``;
    ``'fused'`` is timed only where it runs its compiled kernel. The choice is written to
    each layer's ``form`` (saved in the state dict); ``forward`` never times anything.
    With one CPU thread the forms are timed by the thread's CPU time (robust to other
    processes on a shared machine), else by wall-clock time.

    Args:
        model (nn.Module): model holding :class:`PrunedConv2d` modules (modified in place).
        example_input (Tensor): a batch of the deployment shape, on the deployment device.
        forward (callable, optional): ``forward(x)`` instead of ``model(x)``.
        repeats (int): timed runs per form. Defaults to 3.
        stripe_margin (float): required relative gain of a stripe form. Defaults to 0.05.

    Returns:
        dict[str, str]: the chosen form by module name.
    """
    layers = {n: m for n, m in model.named_modules() if isinstance(m, PrunedConv2d)}
    chosen: Dict[str, str] = {}
    inputs: Dict[str, torch.Tensor] = {}
    handles = [m.register_forward_pre_hook(lambda mod, a, n=n: inputs.setdefault(n, a[0]))
               for n, m in layers.items()]
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        (forward or model)(example_input)
    finally:
        for h in handles:
            h.remove()
        for m, t in modes.items():
            m.train(t)
    for name, m in layers.items():
        x = inputs.get(name)
        if x is None:
            continue
        # one CPU thread: the thread's CPU time (robust to other processes on a shared machine)
        clock = time.thread_time if not x.is_cuda and torch.get_num_threads() == 1 else time.perf_counter
        # 'fused' is timed only where it runs its kernel (elsewhere it is the 'nchw' form)
        times = {f: [] for f in PrunedConv2d.FORMS if f != 'fused' or m.fused_runs_kernel(x)}
        for f in times:
            m.run_form(f, x)  # warm-up (plans, caches, allocator)
        for _ in range(repeats):  # round-robin: a load spike hits every form alike
            for f in times:
                if x.is_cuda:
                    torch.cuda.synchronize(x.device)
                t0 = clock()
                m.run_form(f, x)
                if x.is_cuda:
                    torch.cuda.synchronize(x.device)
                times[f].append(clock() - t0)
        best = {f: min(t) * (1.0 if f in ('dense', 'full', 'fused') else 1.0 + stripe_margin)
                for f, t in times.items()}
        m.form = chosen[name] = min(best, key=best.get)
    return chosen
