"""Training-time Filter-Skeleton update (PFF, arXiv 2009.14410, Sec. 3.2; spec A.4).

Per iteration, after ``backward()`` and before the optimiser step:

1. L1 push: ``I.grad += α · sign(I)`` (or add ``α · Σ|I|`` to the loss instead);
2. threshold: ``mask = |I| > δ``; ``I ← I · mask``; ``I.grad ← I.grad · mask``;
3. BN masking: ``alive[n] = any_{i,j} mask[n, i, j]``; γ, β and their grads of the
   BN following the conv are multiplied by ``alive`` (only where the channel can
   legally disappear).
After the step, dead entries and their momentum are re-zeroed (exactly "not updated").
"""
from typing import Iterable, Optional

import torch
import torch.nn as nn

__all__ = ['fs_l1_penalty', 'add_l1_sign_grad', 'threshold_skeleton', 'mask_bn_by_liveness', 'zero_dead_momentum']


def fs_l1_penalty(skeletons: Iterable[torch.Tensor], alpha: float) -> torch.Tensor:
    """``α · Σ_layers ‖I‖₁`` over the given skeletons (each (N, K, K)); a 0-dim tensor."""
    total = None
    for s in skeletons:
        term = s.abs().sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return alpha * total


@torch.no_grad()
def add_l1_sign_grad(skeleton: torch.Tensor, alpha: float) -> None:
    """``I.grad += α · sign(I)`` in place (creates the grad when missing)."""
    if skeleton.grad is None:
        skeleton.grad = torch.zeros_like(skeleton)
    skeleton.grad.add_(torch.sign(skeleton), alpha=alpha)


@torch.no_grad()
def threshold_skeleton(skeleton: torch.Tensor, threshold: float) -> torch.Tensor:
    """Zero ``|I| ≤ δ`` entries and their grads in place.

    Args:
        skeleton (Tensor): (N, K, K) parameter ``I``.
        threshold (float): δ.

    Returns:
        Tensor: (N, K, K) bool mask of live stripes.
    """
    mask = skeleton.abs() > threshold
    skeleton.mul_(mask)
    if skeleton.grad is not None:
        skeleton.grad.mul_(mask)
    return mask


@torch.no_grad()
def mask_bn_by_liveness(bn: nn.Module, alive: torch.Tensor, grads: bool = True) -> None:
    """Multiply BN γ, β (and their grads) by ``alive`` (N,) bool, in place."""
    for p in (bn.weight, bn.bias):
        if p is None:
            continue
        a = alive.to(p.dtype)
        p.mul_(a)
        if grads and p.grad is not None:
            p.grad.mul_(a)


@torch.no_grad()
def zero_dead_momentum(optimizer: torch.optim.Optimizer, param: torch.Tensor, keep: torch.Tensor) -> None:
    """Multiply every optimiser-state tensor of ``param`` shaped like it (momentum, Adam moments)
    by ``keep`` (broadcastable to ``param``)."""
    state: Optional[dict] = optimizer.state.get(param)
    if not state:
        return
    for v in state.values():
        if torch.is_tensor(v) and v.shape == param.shape:
            v.mul_(keep.to(v.dtype))
