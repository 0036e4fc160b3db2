"""One optimiser per ring member, with the same (slr) or different (dlr) initial learning rates."""
import copy
from typing import Optional, Sequence

from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS

from mm_ext._registry import register
from mm_ext.core.grafting import dlr_factors


@register(OPTIM_WRAPPER_CONSTRUCTORS)
class GraftingOptimWrapperConstructor:
    """Builds an ``OptimWrapperDict`` ``{'net<k>': OptimWrapper}`` for a ``GraftingClassifier``.

    The usual ``optim_wrapper`` config (optimizer, paramwise_cfg, ...) is applied to each member;
    member k's learning rate is multiplied by its factor. ``param_scheduler`` entries then apply
    to each member's optimiser separately (mmengine builds one scheduler list per dict entry), so
    StepLR / per-iteration cosine keep the members' LR ratio.

    Config: ``optim_wrapper = dict(constructor='GraftingOptimWrapperConstructor', lr_mode='diff',
    optimizer=dict(type='SGD', lr=0.1, ...))`` (mmengine passes only the constructor's name, so
    ``lr_mode`` / ``lr_factors`` ride in ``optim_wrapper`` and are removed before the wrappers are built).

    Args:
        optim_wrapper_cfg (dict): as for mmengine's default constructor, plus the keys below.
        paramwise_cfg (dict, optional): as for mmengine's default constructor.
        lr_mode (str): ``'same'`` (slr: every member at the config's lr) or ``'diff'`` (dlr:
            lr_k = lr * (1 + cos(pi * (N - k) / N)) / 2, k = 1..N). Defaults to ``'same'``.
        lr_factors (sequence of float, optional): explicit factors (overrides ``lr_mode``).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None, lr_mode: str = 'same',
                 lr_factors: Optional[Sequence[float]] = None):
        optim_wrapper_cfg = dict(optim_wrapper_cfg)
        lr_mode = optim_wrapper_cfg.pop('lr_mode', lr_mode)
        lr_factors = optim_wrapper_cfg.pop('lr_factors', lr_factors)
        if lr_mode not in ('same', 'diff'):
            raise ValueError(f"GraftingOptimWrapperConstructor: lr_mode must be 'same' or 'diff', got {lr_mode!r}")
        if 'optimizer' not in optim_wrapper_cfg:
            raise ValueError('GraftingOptimWrapperConstructor: optim_wrapper needs an optimizer')
        self.optim_wrapper_cfg, self.paramwise_cfg = optim_wrapper_cfg, paramwise_cfg
        self.lr_mode, self.lr_factors = lr_mode, lr_factors

    def __call__(self, model) -> OptimWrapperDict:
        if is_model_wrapper(model):
            model = model.module
        if not hasattr(model, 'local_items'):
            raise TypeError(f'GraftingOptimWrapperConstructor: the model is a {type(model).__name__}, '
                            'not a GraftingClassifier')
        n = model.num_nets
        factors = list(self.lr_factors) if self.lr_factors is not None else (
            dlr_factors(n) if self.lr_mode == 'diff' else [1.0] * n)
        if len(factors) != n:
            raise ValueError(f'GraftingOptimWrapperConstructor: {len(factors)} lr_factors for {n} networks')
        wrappers = {}
        for g, net in model.local_items():
            cfg = copy.deepcopy(self.optim_wrapper_cfg)
            cfg['optimizer']['lr'] = cfg['optimizer']['lr'] * factors[g]
            wrappers[f'net{g}'] = DefaultOptimWrapperConstructor(cfg, copy.deepcopy(self.paramwise_cfg))(net)
        return OptimWrapperDict(**wrappers)
