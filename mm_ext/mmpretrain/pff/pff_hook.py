"""mmengine hook running the PFF training-time skeleton update (spec A.4, E.1)."""
import copy
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from mm_ext._registry import register
from mm_ext.core.pruning import (FilterSkeletonRegularizer, count_params_flops, dense_layers,
                                 prune_filter_skeleton, trace_channel_groups)


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@register(HOOKS)
class PFFHook(Hook):
    """L1 push, per-iteration threshold and BN liveness masking of Filter Skeletons, plus logging.

    `Pruning Filter in Filter <https://arxiv.org/abs/2009.14410>`_, Sec. 3.2. In
    ``before_train`` the hook traces which conv channels may disappear (BN after a conv
    that feeds only convs/linears; never channels feeding a residual add), logs the layers
    that stay dense and why (linears, grouped/depthwise convs whose channels are tied to
    their groups), then attaches a :class:`~mm_ext.core.pruning.FilterSkeletonRegularizer`
    to the optimiser as step pre/post hooks, so every ``optimizer.step()`` does, on unscaled
    gradients (AMP safe): (``l1_mode='grad'`` only) ``I.grad += α·sign(I)``; zero ``|I| ≤ δ``
    and its grad; mask the following BN's γ, β (and grads) of fully dead filters; step;
    re-zero dead entries and their momentum. With ``l1_mode='loss'`` (default) the model adds
    ``loss_fs_l1 = α·Σ|I|`` to its losses instead.
    Every ``log_interval_epochs`` epochs it logs kept stripes/filters and the params /
    FLOPs the pruned network would have.

    Args:
        alpha (float): α (official ``--sr``). Defaults to 1e-5.
        threshold (float): δ (official ``--threshold``). Defaults to 0.01.
        l1_mode (str): ``'loss'`` (``loss_fs_l1`` term added by :class:`PFFImageClassifier`:
            the paper's objective, spec decision 1) or ``'grad'`` (official sign-gradient
            injection on unscaled gradients). Defaults to 'loss'.
        reset_dead (bool): re-zero dead entries and momentum after each step (False =
            official one-iteration momentum leak). Defaults to True.
        mask_bn (bool): mask BN γ/β of dead filters where the channel is removable.
            Defaults to True.
        input_shape (sequence[int]): (C, H, W) for tracing and FLOPs. Defaults to (3, 32, 32).
        log_interval_epochs (int): epochs between statistics logs; 0 disables. Defaults to 1.

    Note:
        Needs a :class:`PFFImageClassifier` (or any model with ``tensor_path()`` and
        :class:`FilterSkeletonConv2d` modules) and a single-optimiser ``OptimWrapper``.
    """

    priority = 'NORMAL'

    def __init__(self, alpha: float = 1e-5, threshold: float = 0.01, l1_mode: str = 'loss',
                 reset_dead: bool = True, mask_bn: bool = True, input_shape: Sequence[int] = (3, 32, 32),
                 log_interval_epochs: int = 1):
        if l1_mode not in ('grad', 'loss'):
            raise ValueError(f"PFFHook: l1_mode must be 'grad' or 'loss', got {l1_mode!r}")
        if len(tuple(input_shape)) != 3:
            raise ValueError(f'PFFHook: input_shape must be (C, H, W), got {input_shape!r}')
        self.alpha, self.threshold, self.l1_mode = float(alpha), float(threshold), l1_mode
        self.reset_dead, self.mask_bn = reset_dead, mask_bn
        self.input_shape = tuple(input_shape)
        self.log_interval_epochs = log_interval_epochs
        self.regularizer: Optional[FilterSkeletonRegularizer] = None

    def _example(self, model):
        p = next(model.parameters())
        return torch.zeros(2, *self.input_shape, device=p.device, dtype=p.dtype)

    def before_train(self, runner) -> None:
        model = _unwrap(runner.model)
        if not hasattr(model, 'tensor_path'):
            raise TypeError(f'PFFHook needs a PFFImageClassifier (model.type); got {type(model).__name__}')
        optimizer = getattr(runner.optim_wrapper, 'optimizer', None)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError('PFFHook needs a single-optimiser OptimWrapper (optim_wrapper=dict(optimizer=...)); '
                            f'got {type(runner.optim_wrapper).__name__}')
        bn_map = {}
        if self.mask_bn:
            try:
                groups = trace_channel_groups(model.tensor_path(), self._example(model))
                regularized = {n for n, m in model.named_modules() if getattr(m, 'regularized', False)}
                bn_map = {n: g.bn for n, g in groups.items()
                          if g.removable and g.bn is not None and n in regularized}
            except Exception as exc:  # noqa: BLE001 - untraceable models train without BN masking
                runner.logger.warning(f'PFFHook: channel tracing failed ({type(exc).__name__}: {exc}); '
                                      'BN liveness masking is off')
        self.regularizer = FilterSkeletonRegularizer(model, self.alpha, self.threshold, bn_map=bn_map,
                                                     l1_mode=self.l1_mode, reset_dead=self.reset_dead)
        self.regularizer.attach(optimizer)
        model.fs_l1_alpha = self.alpha if self.l1_mode == 'loss' else 0.0
        for name, why in dense_layers(model):
            runner.logger.info(f'PFFHook: {name} stays dense: {why}')
        runner.logger.info(f'PFFHook: {len(self.regularizer.convs)} regularised skeleton convs, '
                           f'{len(bn_map)} BNs masked by filter liveness, alpha={self.alpha}, '
                           f'threshold={self.threshold}, l1_mode={self.l1_mode}')

    def after_train(self, runner) -> None:
        if self.regularizer is not None:
            self.regularizer.detach()

    @torch.no_grad()
    def pruned_cost(self, model):
        """(params, FLOPs) of the unpruned and of the network pruned at δ (per image); params
        as the official code counts them (skeletons included)."""
        x = self._example(model)[:1]
        p0, f0 = count_params_flops(model.tensor_path(), x)
        pruned = copy.deepcopy(model).eval()
        prune_filter_skeleton(pruned, x.expand(2, -1, -1, -1), self.threshold, form='dense',
                              root=pruned.tensor_path())
        p1, f1 = count_params_flops(pruned.tensor_path(), x)
        return p0, f0, p1, f1

    def after_train_epoch(self, runner) -> None:
        if self.regularizer is None or not self.log_interval_epochs or \
                not self.every_n_epochs(runner, self.log_interval_epochs):
            return
        model = _unwrap(runner.model)
        s = self.regularizer.stats()
        p0, f0, p1, f1 = self.pruned_cost(model)
        scalars = {
            'pff/stripes_kept_ratio': s['stripes_kept'] / max(1, s['stripes_total']),
            'pff/filters_kept_ratio': s['filters_kept'] / max(1, s['filters_total']),
            'pff/params_ratio': p1 / p0,
            'pff/flops_ratio': f1 / f0,
            'pff/fs_l1': s['fs_l1'],
        }
        runner.visualizer.add_scalars(scalars, step=runner.epoch + 1)
        runner.logger.info(
            f"PFF epoch {runner.epoch + 1}: stripes {s['stripes_kept']}/{s['stripes_total']}, "
            f"filters {s['filters_kept']}/{s['filters_total']}, params {p1}/{p0} ({p1 / p0:.3f}), "
            f"FLOPs {f1}/{f0} ({f1 / f0:.3f}), sum|I| {s['fs_l1']:.1f}")
