"""Conv2d with a Filter Skeleton (PFF, arXiv 2009.14410, Sec. 3.1, Eq. 2-3)."""
from typing import Optional

import torch
import torch.nn as nn

__all__ = ['FilterSkeletonConv2d', 'stripe_ineligibility', 'skeleton_ineligibility', 'skeleton_kind']


def skeleton_ineligibility(conv: nn.Module) -> Optional[str]:
    """Why ``conv`` cannot carry a Filter Skeleton, or ``None`` if it can.

    Any ``nn.Conv2d`` can: the skeleton (N, KH, KW) scales the stripe ``W[n, :, i, j]``,
    which for a grouped conv holds the C/groups weights of filter n's group and for a
    depthwise conv is a single weight (per-weight skeleton, as the official MobileNetV2).
    """
    if not isinstance(conv, nn.Conv2d):
        return f'{type(conv).__name__} is not an nn.Conv2d'
    return None


def skeleton_kind(conv: nn.Conv2d) -> str:
    """``'stripe'`` (groups 1), ``'per-weight'`` (depthwise: one weight per stripe) or
    ``'grouped-stripe'`` (a stripe spans the C/groups inputs of the filter's group)."""
    if conv.groups == 1:
        return 'stripe'
    return 'per-weight' if conv.in_channels == conv.groups else 'grouped-stripe'


def stripe_ineligibility(conv: nn.Module) -> Optional[str]:
    """Why ``conv`` cannot run in the stripe-wise form (:class:`StripeConv2d`), or ``None``.

    Stripe form needs: ``nn.Conv2d``, groups 1, dilation 1, a square odd kernel, a square
    stride, symmetric integer zero padding. Other convs still train with a skeleton and are
    exported as ordinary (cropped, zero-striped) convs.
    """
    if not isinstance(conv, nn.Conv2d):
        return f'{type(conv).__name__} is not an nn.Conv2d'
    if conv.groups != 1:
        return f'groups={conv.groups} (needs 1)'
    if tuple(conv.dilation) != (1, 1):
        return f'dilation={tuple(conv.dilation)} (needs 1)'
    kh, kw = conv.kernel_size
    if kh != kw or kh % 2 == 0:
        return f'kernel_size={tuple(conv.kernel_size)} (needs a square odd kernel)'
    if conv.stride[0] != conv.stride[1]:
        return f'stride={tuple(conv.stride)} (needs a square stride)'
    if isinstance(conv.padding, str) or conv.padding[0] != conv.padding[1]:
        return f'padding={conv.padding!r} (needs symmetric integer padding)'
    if conv.padding_mode != 'zeros':
        return f"padding_mode={conv.padding_mode!r} (needs 'zeros')"
    return None


class FilterSkeletonConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose effective weight is ``weight * filter_skeleton``.

    The Filter Skeleton ``I`` (``filter_skeleton``, shape (N, KH, KW), N output
    filters, KH×KW kernel) holds one scalar per stripe ``weight[n, :, i, j]``
    and is initialised to 1 (paper Sec. 3.1). Forward:
    ``conv(x, W ⊙ I)`` with ``I`` broadcast over the C/groups input channels of the
    stripe (a single weight for a depthwise conv).

    Args:
        *args, **kwargs: as ``nn.Conv2d``.
        regularized (bool): whether the L1 push and the threshold apply to this
            skeleton (False for shortcut projections, spec A.5). Defaults to True.

    Note:
        Being an ``nn.Conv2d`` subclass, host initialisers (Kaiming on convs)
        still reach ``weight``; they never touch ``filter_skeleton``.
    """

    def __init__(self, *args, regularized: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.filter_skeleton = nn.Parameter(torch.ones(self.out_channels, *self.kernel_size, dtype=self.weight.dtype,
                                                       device=self.weight.device))
        self.regularized = regularized

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, regularized: bool = True) -> 'FilterSkeletonConv2d':
        """Wrap an existing conv; ``weight`` and ``bias`` are the *same* Parameter objects."""
        reason = skeleton_ineligibility(conv)
        if reason is not None:
            raise ValueError(f'cannot equip a Filter Skeleton: {reason}')
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.__dict__.update({k: v for k, v in conv.__dict__.items()
                             if k not in ('_parameters', '_buffers', '_modules')})
        new._parameters = dict(conv._parameters)
        new._buffers = dict(conv._buffers)
        new._modules = dict(conv._modules)
        new.filter_skeleton = nn.Parameter(torch.ones(conv.out_channels, *conv.kernel_size, dtype=conv.weight.dtype,
                                                      device=conv.weight.device))
        new.regularized = regularized
        return new

    def effective_weight(self) -> torch.Tensor:
        """``W ⊙ I``: (N, C/groups, KH, KW)."""
        return self.weight * self.filter_skeleton.unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, N, H_out, W_out)."""
        return self._conv_forward(x, self.effective_weight(), self.bias)

    def to_conv(self, fold: bool = True) -> nn.Conv2d:
        """Plain ``nn.Conv2d``. ``fold=True`` bakes ``I`` into the weight (new Parameter);
        ``fold=False`` drops ``I`` and returns the original weight Parameter (exact inverse of
        :meth:`from_conv`)."""
        conv = nn.Conv2d.__new__(nn.Conv2d)
        nn.Module.__init__(conv)
        conv.__dict__.update({k: v for k, v in self.__dict__.items()
                              if k not in ('_parameters', '_buffers', '_modules', 'regularized')})
        conv._parameters = {k: v for k, v in self._parameters.items() if k != 'filter_skeleton'}
        conv._buffers = dict(self._buffers)
        conv._modules = dict(self._modules)
        if fold:
            conv.weight = nn.Parameter(self.effective_weight().detach().clone(),
                                       requires_grad=self.weight.requires_grad)
        return conv

    def extra_repr(self) -> str:
        return super().extra_repr() + f', regularized={self.regularized}'
