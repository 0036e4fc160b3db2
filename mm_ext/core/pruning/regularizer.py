"""The per-iteration Filter-Skeleton update attached to a torch optimiser (spec A.4, E.1).

:class:`FilterSkeletonRegularizer` registers an optimiser *step pre-hook* (runs after
``backward()`` and, under AMP, after the gradients were unscaled) and a *step post-hook*:

pre-step:  (1) ``I.grad += α · sign(I)`` (``l1_mode='grad'``, the official injection);
           (2) ``mask = |I| > δ``, ``I ← I·mask``, ``I.grad ← I.grad·mask``;
           (3) γ, β and their grads of the BN after each conv whose channels may disappear
               ← · alive, ``alive[n] = any_{i,j} mask[n, i, j]``;
post-step: (4) when ``reset_dead``: dead ``I`` entries, masked γ/β and their optimiser
               state (momentum) are zeroed again, so dead entries are exactly never updated
               (spec decision 2; ``reset_dead=False`` reproduces the official one-iteration
               momentum leak).
With ``l1_mode='loss'`` step (1) is skipped and the caller adds :meth:`l1_penalty` to the loss.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from .filter_skeleton_conv import FilterSkeletonConv2d
from .skeleton_update import add_l1_sign_grad, fs_l1_penalty, mask_bn_by_liveness, threshold_skeleton, \
    zero_dead_momentum

__all__ = ['FilterSkeletonRegularizer']


class FilterSkeletonRegularizer:
    """Sparsity push + threshold + BN liveness masking for every regularised skeleton of a model.

    Args:
        model (nn.Module): model holding :class:`FilterSkeletonConv2d` modules.
        alpha (float): α, L1 strength. Defaults to 1e-5.
        threshold (float): δ. Defaults to 0.01.
        bn_map (dict[str, str], optional): conv name -> name of the BN to mask by filter
            liveness (only convs whose channels can legally disappear; see
            :func:`trace_channel_groups`). Defaults to None (no BN masking).
        l1_mode (str): ``'grad'`` (inject α·sign(I) before the step) or ``'loss'``.
            Defaults to 'loss' (spec decision 1: the paper's objective; AMP-safe).
        reset_dead (bool): re-zero dead entries and their momentum after the step.
            Defaults to True.
    """

    def __init__(self, model: nn.Module, alpha: float = 1e-5, threshold: float = 0.01,
                 bn_map: Optional[Dict[str, str]] = None, l1_mode: str = 'loss', reset_dead: bool = True):
        if l1_mode not in ('grad', 'loss'):
            raise ValueError(f"l1_mode must be 'grad' or 'loss', got {l1_mode!r}")
        if alpha < 0 or threshold < 0:
            raise ValueError(f'alpha and threshold must be >= 0, got alpha={alpha}, threshold={threshold}')
        self.alpha, self.threshold, self.l1_mode, self.reset_dead = alpha, threshold, l1_mode, reset_dead
        self.convs: List[Tuple[str, FilterSkeletonConv2d]] = [
            (n, m) for n, m in model.named_modules() if isinstance(m, FilterSkeletonConv2d) and m.regularized]
        bn_map = bn_map or {}
        names = {n for n, _ in self.convs}
        unknown = set(bn_map) - names
        if unknown:
            raise ValueError(f'bn_map names convs without a regularised skeleton: {sorted(unknown)}')
        self.bns: Dict[str, nn.Module] = {n: model.get_submodule(b) for n, b in bn_map.items()}
        self._masks: Dict[str, torch.Tensor] = {}
        self._handles = []

    # ------------------------------------------------------------ updates
    def l1_penalty(self) -> torch.Tensor:
        """α · Σ ‖I‖₁ over the regularised skeletons (for ``l1_mode='loss'``)."""
        return fs_l1_penalty([m.filter_skeleton for _, m in self.convs], self.alpha)

    @torch.no_grad()
    def before_step(self, optimizer: Optional[torch.optim.Optimizer] = None, *_) -> None:
        """Steps (1)-(3); call after backward, before ``optimizer.step()``."""
        for name, m in self.convs:
            fs = m.filter_skeleton
            if self.l1_mode == 'grad' and self.alpha > 0:
                add_l1_sign_grad(fs, self.alpha)
            mask = threshold_skeleton(fs, self.threshold)
            self._masks[name] = mask
            bn = self.bns.get(name)
            if bn is not None:
                mask_bn_by_liveness(bn, mask.any(dim=(1, 2)))

    @torch.no_grad()
    def after_step(self, optimizer: Optional[torch.optim.Optimizer] = None, *_) -> None:
        """Step (4); call after ``optimizer.step()``."""
        if not self.reset_dead:
            return
        for name, m in self.convs:
            mask = self._masks.get(name)
            if mask is None:
                continue
            m.filter_skeleton.mul_(mask)
            if optimizer is not None:
                zero_dead_momentum(optimizer, m.filter_skeleton, mask)
            bn = self.bns.get(name)
            if bn is not None:
                alive = mask.any(dim=(1, 2))
                mask_bn_by_liveness(bn, alive, grads=False)
                if optimizer is not None:
                    for p in (bn.weight, bn.bias):
                        if p is not None:
                            zero_dead_momentum(optimizer, p, alive)

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Run :meth:`before_step` / :meth:`after_step` around every ``optimizer.step()``."""
        self.detach()
        self._handles = [optimizer.register_step_pre_hook(lambda opt, a, k: self.before_step(opt)),
                         optimizer.register_step_post_hook(lambda opt, a, k: self.after_step(opt))]

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    # ------------------------------------------------------------ statistics
    @torch.no_grad()
    def stats(self) -> Dict[str, float]:
        """Kept stripes / filters over the regularised convs (|I| > δ).

        Returns:
            dict: ``stripes_kept``, ``stripes_total``, ``filters_kept``, ``filters_total``,
            ``fs_l1`` (Σ|I|).
        """
        s = dict(stripes_kept=0, stripes_total=0, filters_kept=0, filters_total=0, fs_l1=0.0)
        for _, m in self.convs:
            mask = m.filter_skeleton.abs() > self.threshold
            s['stripes_kept'] += int(mask.sum())
            s['stripes_total'] += mask.numel()
            s['filters_kept'] += int(mask.any(dim=(1, 2)).sum())
            s['filters_total'] += mask.shape[0]
            s['fs_l1'] += float(m.filter_skeleton.abs().sum())
        return s
