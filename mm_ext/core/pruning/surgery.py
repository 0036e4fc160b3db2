"""Model surgery: put Filter Skeletons on chosen convs of any model, and take them off."""
import re
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch.nn as nn

from .filter_skeleton_conv import FilterSkeletonConv2d, skeleton_ineligibility, skeleton_kind

__all__ = ['equip_filter_skeleton', 'unequip_filter_skeleton', 'filter_skeleton_convs', 'dense_layers']

Patterns = Optional[Union[str, Sequence[str]]]


def _as_list(p: Patterns) -> List[str]:
    if p is None:
        return []
    return [p] if isinstance(p, str) else list(p)


def _matches(name: str, patterns: List[str]) -> bool:
    return any(re.search(p, name) for p in patterns)


def _set_child(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition('.')
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def equip_filter_skeleton(model: nn.Module,
                          include: Patterns = None,
                          exclude: Patterns = None,
                          unregularized: Patterns = r'(downsample|shortcut)',
                          strict: bool = False) -> List[str]:
    """Replace eligible ``nn.Conv2d`` modules of ``model`` by :class:`FilterSkeletonConv2d` in place.

    Names are matched with ``re.search`` against the dotted module name.

    Args:
        model (nn.Module): any model; modified in place.
        include (str | list[str], optional): only convs whose name matches one of
            these patterns. Defaults to None (every eligible conv).
        exclude (str | list[str], optional): skip convs matching these. Defaults to None.
        unregularized (str | list[str], optional): convs that get a skeleton but no L1
            push / threshold (shortcut projections, spec A.5).
            Defaults to ``r'(downsample|shortcut)'``.
        strict (bool): raise when an *included* conv is ineligible instead of skipping
            it. Defaults to False.

    Grouped and depthwise convs get a skeleton too (:func:`skeleton_kind`): per filter
    stripe of C/groups weights, or per weight for depthwise convs.

    Returns:
        list[str]: names of the equipped convs, in module order.
    """
    inc, exc, unreg = _as_list(include), _as_list(exclude), _as_list(unregularized)
    todo: List[Tuple[str, nn.Conv2d]] = []
    for name, m in model.named_modules():
        if type(m) is not nn.Conv2d:  # already-equipped or other conv types are left alone
            continue
        if inc and not _matches(name, inc):
            continue
        if exc and _matches(name, exc):
            continue
        reason = skeleton_ineligibility(m)
        if reason is not None:
            if strict:
                raise ValueError(f'equip_filter_skeleton: conv {name!r} is not eligible: {reason}; '
                                 'exclude it or pass strict=False')
            continue
        todo.append((name, m))
    for name, m in todo:
        _set_child(model, name, FilterSkeletonConv2d.from_conv(m, regularized=not _matches(name, unreg)))
    return [n for n, _ in todo]


def unequip_filter_skeleton(model: nn.Module, fold: bool = True) -> List[str]:
    """Turn every :class:`FilterSkeletonConv2d` back into ``nn.Conv2d`` (in place).

    Args:
        model (nn.Module): model to modify.
        fold (bool): bake the skeleton into the weight (outputs unchanged); False
            restores the original weight (inverse of :func:`equip_filter_skeleton`).
            Defaults to True.

    Returns:
        list[str]: names of the converted convs.
    """
    todo = [(n, m) for n, m in model.named_modules() if isinstance(m, FilterSkeletonConv2d)]
    for name, m in todo:
        _set_child(model, name, m.to_conv(fold=fold))
    return [n for n, _ in todo]


def filter_skeleton_convs(model: nn.Module) -> Iterable[Tuple[str, FilterSkeletonConv2d]]:
    """``(name, module)`` for every Filter-Skeleton conv of ``model``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, FilterSkeletonConv2d)]


def dense_layers(model: nn.Module) -> List[Tuple[str, str]]:
    """Weighted layers of ``model`` that carry no stripe skeleton, or carry one that cannot
    remove channels / run stripe-wise, with the reason (for the training and export logs).

    Returns:
        list[tuple[str, str]]: ``(module name, why it stays dense)`` in module order.
    """
    out = []
    for name, m in model.named_modules():
        if isinstance(m, FilterSkeletonConv2d):
            kind = skeleton_kind(m)
            if kind != 'stripe':
                out.append((name, f'groups={m.groups}: {kind} skeleton (weights zeroed, kernel cropped), '
                                  'output channels kept (tied to the groups)'))
        elif isinstance(m, nn.Linear):
            out.append((name, 'nn.Linear: no kernel stripes (a 1x1 conv as a linear layer), left dense'))
        elif isinstance(m, nn.modules.conv._ConvNd):
            out.append((name, f'{type(m).__name__}: no skeleton (only nn.Conv2d modules, not excluded, get one)'))
    return out
