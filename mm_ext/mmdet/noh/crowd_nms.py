"""mmdet/mmcv NMS config keys for the crowd-NMS family, and ``type='crowd_nms'`` for any mmdet head.

One parser (:func:`parse_nms_cfg`) turns an mmdet ``nms`` config into a call of
:func:`mm_ext.core.nms.batched_crowd_nms`; the NOH head, the NOH TTA merge and the
``crowd_nms`` op below all use it, so the same keys mean the same thing everywhere:

================  =====================================================================
``type``          keys (defaults)
================  =====================================================================
``'nms'``         mmcv greedy NMS: ``iou_threshold`` (0.5), ``score_threshold`` (0: drop
                  boxes below it first), ``max_num`` (-1), ``offset`` (0 only)
``'soft_nms'``    mmcv Soft-NMS: ``iou_threshold`` (0.3), ``sigma`` (0.5), ``min_score``
                  (1e-3), ``method`` ``'naive'`` / ``'linear'`` (decay above the threshold)
                  / ``'gaussian'`` (decay of every overlapping box), ``offset`` (0 only)
``'crowd_nms'``   the family: ``method`` ``'noh'`` / ``'greedy'`` / ``'adaptive'`` /
                  ``'soft_linear'`` / ``'soft_gaussian'`` (official NOH-NMS methods; the
                  soft decays act only above ``iou_threshold``), ``iou_threshold`` (0.5),
                  ``min_score`` (0.01), ``noh_score_thr`` (0.3), ``sigma`` (0.2),
                  ``flag_thr`` (0.6), ``soft_sigma`` (0.5), ``legacy_iou_offset`` (False),
                  ``keep_first_pick`` (True), ``max_num`` (-1)
``'noh_nms'``     ``crowd_nms`` with ``method='noh'`` (likewise ``'greedy'``, ``'noh'``,
                  ``'adaptive'``, ``'adaptive_nms'``: the method as the type name)
================  =====================================================================

Every type also takes mmcv's ``class_agnostic`` (False: classes never interact)
and ``split_thr`` (accepted for compatibility and ignored: all classes always run
in one call, the pair sweep never builds an N x N matrix). Unknown keys raise.

``'crowd_nms'`` is also added to the namespace in which mmcv's ``batched_nms``
resolves string NMS types (``mmcv.ops.nms``), so ``nms=dict(type='crowd_nms',
method='soft_linear', iou_threshold=0.5)`` works in the ``test_cfg`` of any mmdet
head (e.g. ``StandardRoIHead`` + ``Shared2FCBBoxHead``). Methods that need the
NOH outputs (``'noh'``, ``'adaptive'``) raise there: use :class:`NOHBBoxHead`.
"""
import importlib
from typing import Optional, Tuple

import torch
from torch import Tensor

from mm_ext.core.nms import CROWD_NMS_METHODS, batched_crowd_nms

__all__ = ['parse_nms_cfg', 'crowd_nms', 'register_crowd_nms_type', 'run_crowd_nms']

_COMMON = ('class_agnostic', 'split_thr')
_CROWD_KEYS = ('method', 'iou_threshold', 'min_score', 'noh_score_thr', 'sigma', 'flag_thr', 'soft_sigma',
               'legacy_iou_offset', 'keep_first_pick', 'max_num')
_METHOD_TYPES = {'noh_nms': 'noh', 'noh': 'noh', 'greedy': 'greedy', 'adaptive': 'adaptive',
                 'adaptive_nms': 'adaptive'}


def _check_keys(cfg: dict, allowed, type_name: str) -> None:
    bad = sorted(set(cfg) - set(allowed) - set(_COMMON))
    if bad:
        raise ValueError(f"nms type {type_name!r} does not take {bad}; its keys are "
                         f"{sorted(set(allowed) | set(_COMMON))} (see mm_ext.mmdet.noh.crowd_nms)")


def _check_offset(cfg: dict, type_name: str) -> None:
    if cfg.pop('offset', 0) not in (0, False):
        raise ValueError(f"nms type {type_name!r}: offset=1 (+1 in intersections and areas) is not "
                         "supported; use type='crowd_nms' with legacy_iou_offset=True for the official "
                         "NOH-NMS convention (+1 in the areas only), or offset=0")


def parse_nms_cfg(nms_cfg: Optional[dict]) -> Tuple[Optional[dict], bool]:
    """Translate an mmdet ``nms`` config into :func:`batched_crowd_nms` keyword arguments.

    Args:
        nms_cfg (dict | None): e.g. ``dict(type='soft_nms', iou_threshold=0.5,
            method='linear')``; the table in the module docstring lists the keys.
            None means no NMS (detections are only sorted).

    Returns:
        tuple[dict | None, bool]: the keyword arguments (``method`` and the op
        options; None for no NMS) and ``class_agnostic``.
    """
    if nms_cfg is None:
        return None, False
    cfg = dict(nms_cfg)
    type_name = cfg.pop('type', 'nms')
    if not isinstance(type_name, str):
        raise ValueError(f'nms type must be a name, got {type_name!r}')
    class_agnostic = bool(cfg.pop('class_agnostic', False))
    cfg.pop('split_thr', None)
    if type_name == 'nms':
        _check_offset(cfg, type_name)
        _check_keys(cfg, ('iou_threshold', 'score_threshold', 'max_num'), type_name)
        thr = cfg.get('score_threshold', 0.0)
        return dict(method='greedy', iou_threshold=cfg.get('iou_threshold', 0.5), min_score=thr,
                    keep_first_pick=False, max_num=cfg.get('max_num', -1)), class_agnostic
    if type_name == 'soft_nms':
        _check_offset(cfg, type_name)
        _check_keys(cfg, ('iou_threshold', 'sigma', 'min_score', 'method'), type_name)
        kind = cfg.get('method', 'linear')
        thr, min_score = cfg.get('iou_threshold', 0.3), cfg.get('min_score', 1e-3)
        if kind == 'naive':
            out = dict(method='greedy', iou_threshold=thr)
        elif kind == 'linear':
            out = dict(method='soft_linear', iou_threshold=thr)
        elif kind == 'gaussian':  # mmcv decays every overlapping box: threshold 0
            out = dict(method='soft_gaussian', iou_threshold=0.0, soft_sigma=cfg.get('sigma', 0.5))
        else:
            raise ValueError(f"soft_nms method must be 'naive', 'linear' or 'gaussian', got {kind!r}")
        return dict(out, min_score=min_score, keep_first_pick=True), class_agnostic
    if type_name == 'crowd_nms' or type_name in _METHOD_TYPES:
        _check_keys(cfg, _CROWD_KEYS, type_name)
        if type_name != 'crowd_nms':
            if 'method' in cfg and cfg['method'] != _METHOD_TYPES[type_name]:
                raise ValueError(f"nms type {type_name!r} fixes method={_METHOD_TYPES[type_name]!r}, "
                                 f"got method={cfg['method']!r}; use type='crowd_nms' to choose it")
            cfg['method'] = _METHOD_TYPES[type_name]
        cfg.setdefault('method', 'noh')
        if cfg['method'] not in CROWD_NMS_METHODS:
            raise ValueError(f"crowd_nms method must be one of {CROWD_NMS_METHODS}, got {cfg['method']!r}")
        return cfg, class_agnostic
    raise ValueError(f"unknown nms type {type_name!r}; use 'nms', 'soft_nms', 'crowd_nms' (with method= one "
                     f"of {CROWD_NMS_METHODS}) or {sorted(_METHOD_TYPES)}")


def run_crowd_nms(boxes: Tensor, scores: Tensor, labels: Tensor, nms_cfg: Optional[dict],
                  noh_scores: Optional[Tensor] = None, noh_boxes: Optional[Tensor] = None,
                  max_num: int = -1) -> Tuple[Tensor, Tensor]:
    """Parse ``nms_cfg`` and run it on all classes in one call.

    Args:
        boxes (Tensor): (N, 4) boxes (x1, y1, x2, y2).
        scores (Tensor): (N,) scores.
        labels (Tensor): (N,) int class ids.
        nms_cfg (dict | None): mmdet ``nms`` config (see :func:`parse_nms_cfg`).
        noh_scores (Tensor, optional): (N,) NOH probabilities.
        noh_boxes (Tensor, optional): (N, 4) hallucinated boxes.
        max_num (int): keep at most this many (also capped by the config's
            ``max_num``); <= 0 keeps all. Defaults to -1.

    Returns:
        tuple[Tensor, Tensor]: kept indices (K,) and final scores (K,), score-sorted.
    """
    kwargs, class_agnostic = parse_nms_cfg(nms_cfg)
    if kwargs is None:
        order = torch.sort(scores, descending=True, stable=True).indices
        keep = order if max_num is None or max_num <= 0 else order[:max_num]
        return keep, scores[keep]
    cfg_max = kwargs.pop('max_num', -1)
    caps = [m for m in (cfg_max, max_num) if m is not None and m > 0]
    return batched_crowd_nms(boxes, scores, None if class_agnostic else labels, noh_scores, noh_boxes,
                             max_num=min(caps) if caps else -1, **kwargs)


def crowd_nms(boxes: Tensor, scores: Tensor, method: str = 'greedy', **kwargs) -> Tuple[Tensor, Tensor]:
    """The crowd-NMS family as an mmcv NMS op (``nms=dict(type='crowd_nms', ...)``).

    Called by ``mmcv.ops.batched_nms`` as ``op(boxes, scores, **cfg)`` with the
    classes already separated (coordinate offsets) or merged (``class_agnostic``).

    Args:
        boxes (Tensor): (N, 4) boxes (x1, y1, x2, y2).
        scores (Tensor): (N,) scores.
        method (str): ``'greedy'``, ``'soft_linear'`` or ``'soft_gaussian'`` (the
            others need the NOH outputs). Defaults to ``'greedy'``.
        **kwargs: the ``crowd_nms`` keys of :func:`parse_nms_cfg`.

    Returns:
        tuple[Tensor, Tensor]: ``dets`` (K, 5) = (x1, y1, x2, y2, final score) and
        ``keep`` (K,) indices, in score order.
    """
    if method in ('noh', 'adaptive'):
        raise ValueError(f"crowd_nms method {method!r} needs the NOH outputs, which a stock mmdet head does "
                         "not have: use roi_head=dict(type='NOHRoIHead', bbox_head=dict(type='NOHBBoxHead', "
                         "...)), or method='greedy' / 'soft_linear' / 'soft_gaussian' here")
    kw, _ = parse_nms_cfg(dict(kwargs, type='crowd_nms', method=method))
    keep, final = batched_crowd_nms(boxes, scores, None, **kw)
    return torch.cat([boxes[keep], final[:, None]], 1), keep


def register_crowd_nms_type() -> None:
    """Make ``type='crowd_nms'`` resolvable by ``mmcv.ops.batched_nms`` (idempotent).

    mmcv evaluates a string NMS type inside the ``mmcv.ops.nms`` module, so a new
    name has to be defined there; nothing of mmcv's is replaced.
    """
    module = importlib.import_module('mmcv.ops.nms')
    existing = getattr(module, 'crowd_nms', None)
    if existing is not None and getattr(existing, '__qualname__', None) != crowd_nms.__qualname__:
        raise RuntimeError(f'mmcv.ops.nms already defines a different crowd_nms ({existing!r})')
    module.crowd_nms = crowd_nms
