"""Viewpoint-aware losses of VA-reID (torch only).

`Viewpoint-Aware Loss with Angular Regularization for Person Re-Identification
<https://arxiv.org/abs/1912.01300>`_ (AAAI 2020).

Notation: ``B`` batch size, ``N`` identities, ``V`` viewpoints (3: front, side, back),
``C = N * V`` identity-viewpoint classes; class ``(i, v)`` has index ``i * V + v``.

* :func:`valsr_targets` / :func:`valsr_loss`: viewpoint-aware adaptive label smoothing
  (VALSR, spec section 4.4). With ``p = softmax(logits)``, ``p_id = sum_v p(y, v)`` and
  ``p_yv = p(y, v_true)``, the detached weights ``eps1 = eps * (1 - p_id)`` and
  ``eps2 = eps * (1 - p_yv)`` give the soft target

  ====================================  =========================
  true class ``(y, v)``                 ``1 - eps1 - eps2``
  each other view of identity ``y``     ``eps1 / (V - 1)``
  every class of the other identities   ``eps2 / (C - V)``
  ====================================  =========================

* :func:`static_direction_lsr_targets` and :func:`adaptive_lsr_targets`: the two variants in
  the official code (static 0.6 / 0.15, adaptive ``eps_t = eps * (1 - p_t)``).
* :func:`margin_logits`, :func:`angular_prototype_regularizer`, :func:`vaal_loss`: the
  viewpoint-aware angular loss (VAAL) on the hypersphere: additive cosine margins at the
  identity level (prototypes ``W_i``) and at the viewpoint level (prototypes ``U_{i,v}``), plus
  a regulariser pulling every ``U_{i,v}`` towards its ``W_i``. The paper's scale and margins are
  not confirmed (spec, open question 1): they are arguments.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F

__all__ = [
    'valsr_targets', 'valsr_loss', 'static_direction_lsr_targets', 'adaptive_lsr_targets',
    'soft_cross_entropy', 'margin_logits', 'angular_prototype_regularizer', 'vaal_loss'
]


def _check(num_classes: int, pids: torch.Tensor, views: torch.Tensor, num_views: int) -> int:
    if num_views < 2:
        raise ValueError(f'num_views must be >= 2, got {num_views}')
    if num_classes % num_views or num_classes <= num_views:
        raise ValueError(f'the viewpoint classifier needs num_ids * num_views classes with at least '
                         f'2 identities; got {num_classes} classes for num_views={num_views}')
    if pids.shape != views.shape or pids.ndim != 1:
        raise ValueError(f'pids and views must be 1-D of equal length, got {tuple(pids.shape)} '
                         f'and {tuple(views.shape)}')
    n = num_classes // num_views
    if pids.numel() and (int(pids.min()) < 0 or int(pids.max()) >= n):
        raise ValueError(f'pids must lie in [0, {n}), got range [{int(pids.min())}, {int(pids.max())}]')
    if views.numel() and (int(views.min()) < 0 or int(views.max()) >= num_views):
        raise ValueError(f'views must lie in [0, {num_views}) (missing labels must be filled before '
                         f'the loss), got range [{int(views.min())}, {int(views.max())}]')
    return n


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_c q_c log softmax(logits)_c``.

    Args:
        logits (Tensor): (B, C).
        targets (Tensor): (B, C) soft targets, rows summing to 1.

    Returns:
        Tensor: scalar.
    """
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


@torch.no_grad()
def valsr_targets(logits: torch.Tensor, pids: torch.Tensor, views: torch.Tensor,
                  num_views: int = 3, epsilon: float = 0.2) -> torch.Tensor:
    """VALSR soft targets (detached).

    Args:
        logits (Tensor): (B, C) scores of the identity-viewpoint classifier, ``C = N * V``.
        pids (Tensor): (B,) int identity labels in ``[0, N)``.
        views (Tensor): (B,) int viewpoint labels in ``[0, V)``.
        num_views (int): V. Defaults to 3.
        epsilon (float): smoothing budget. Defaults to 0.2 (Tencent's re-implementation).

    Returns:
        Tensor: (B, C) float32 targets, each row sums to 1.
    """
    b, c = logits.shape
    n = _check(c, pids, views, num_views)
    pids, views = pids.long(), views.long()
    p = F.softmax(logits.detach().float(), dim=1).view(b, n, num_views)
    rows = torch.arange(b, device=logits.device)
    p_views = p[rows, pids]  # (B, V)
    eps1 = epsilon * (1 - p_views.sum(1))
    eps2 = epsilon * (1 - p_views[rows, views])
    q = (eps2 / (c - num_views))[:, None].repeat(1, c).view(b, n, num_views)
    q[rows, pids] = (eps1 / (num_views - 1))[:, None]
    q[rows, pids, views] = 1 - eps1 - eps2
    return q.view(b, c)


def valsr_loss(logits: torch.Tensor, pids: torch.Tensor, views: torch.Tensor,
               num_views: int = 3, epsilon: float = 0.2) -> torch.Tensor:
    """Cross-entropy against :func:`valsr_targets`. Shapes as there; returns a scalar."""
    return soft_cross_entropy(logits, valsr_targets(logits, pids, views, num_views, epsilon))


def static_direction_lsr_targets(num_classes: int, pids: torch.Tensor, views: torch.Tensor,
                                 num_views: int = 3, alpha: float = 0.6,
                                 beta: float = 0.15) -> torch.Tensor:
    """Official static "direction" label smoothing over identity-viewpoint classes.

    The true class gets ``alpha``, each other view of the same identity ``beta``, the rest
    ``1 - alpha - (V - 1) * beta`` is spread uniformly over the ``C - V`` other classes.

    Args:
        num_classes (int): C = N * V.
        pids (Tensor): (B,) identity labels. views (Tensor): (B,) viewpoint labels.
        num_views (int): V. Defaults to 3.
        alpha (float): Defaults to 0.6. beta (float): Defaults to 0.15.

    Returns:
        Tensor: (B, C) float32 targets.
    """
    n = _check(num_classes, pids, views, num_views)
    rest = 1 - alpha - (num_views - 1) * beta
    if rest < 0:
        raise ValueError(f'alpha + (num_views - 1) * beta must be <= 1, got alpha={alpha}, beta={beta}')
    b = pids.shape[0]
    rows = torch.arange(b, device=pids.device)
    q = torch.full((b, n, num_views), rest / (num_classes - num_views), device=pids.device)
    q[rows, pids.long()] = beta
    q[rows, pids.long(), views.long()] = alpha
    return q.view(b, num_classes)


@torch.no_grad()
def adaptive_lsr_targets(logits: torch.Tensor, labels: torch.Tensor,
                         epsilon: float = 0.25) -> torch.Tensor:
    """Official adaptive label smoothing: ``eps_t = epsilon * (1 - p_t)`` (detached).

    The true class gets ``1 - eps_t``; ``eps_t`` is spread uniformly over the other ``C - 1``
    classes (the official code's distribution of the mass is an interpretation).

    Args:
        logits (Tensor): (B, C). labels (Tensor): (B,) int in ``[0, C)``.
        epsilon (float): Defaults to 0.25.

    Returns:
        Tensor: (B, C) float32 targets.
    """
    b, c = logits.shape
    rows = torch.arange(b, device=logits.device)
    p_t = F.softmax(logits.detach().float(), dim=1)[rows, labels.long()]
    eps = epsilon * (1 - p_t)
    q = (eps / (c - 1))[:, None].repeat(1, c)
    q[rows, labels.long()] = 1 - eps
    return q


def margin_logits(cosine: torch.Tensor, labels: torch.Tensor, scale: float,
                  margin: float) -> torch.Tensor:
    """Additive-cosine-margin logits ``scale * (cos - margin * onehot(label))``.

    Args:
        cosine (Tensor): (B, K) cosines between normalised features and prototypes.
        labels (Tensor): (B,) int in ``[0, K)``.
        scale (float): hypersphere radius s. margin (float): m >= 0.

    Returns:
        Tensor: (B, K).
    """
    onehot = F.one_hot(labels.long(), cosine.shape[1]).to(cosine.dtype)
    return scale * (cosine - margin * onehot)


def angular_prototype_regularizer(id_weight: torch.Tensor, view_weight: torch.Tensor,
                                  num_views: int = 3) -> torch.Tensor:
    """Mean ``1 - cos(U_{i,v}, W_i)`` over identities and viewpoints.

    Args:
        id_weight (Tensor): (N, D) identity prototypes W.
        view_weight (Tensor): (N * V, D) viewpoint prototypes U, row ``i * V + v``.

    Returns:
        Tensor: scalar in [0, 2].
    """
    n, d = id_weight.shape
    if view_weight.shape != (n * num_views, d):
        raise ValueError(f'view_weight must have shape ({n * num_views}, {d}) for {n} identities '
                         f'and {num_views} views, got {tuple(view_weight.shape)}')
    w = F.normalize(id_weight, dim=1)[:, None]  # (N, 1, D)
    u = F.normalize(view_weight, dim=1).view(n, num_views, d)
    return (1 - (u * w).sum(-1)).mean()


def vaal_loss(id_cosine: torch.Tensor, view_cosine: torch.Tensor, pids: torch.Tensor,
              views: torch.Tensor, id_weight: torch.Tensor, view_weight: torch.Tensor,
              num_views: int = 3, scale: float = 30.0, margin_id: float = 0.3,
              margin_view: float = 0.1, reg_weight: float = 1.0,
              view_targets: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """Viewpoint-aware angular loss at identity and viewpoint level.

    Args:
        id_cosine (Tensor): (B, N) cosines to the identity prototypes W.
        view_cosine (Tensor): (B, N * V) cosines to the viewpoint prototypes U.
        pids (Tensor): (B,) identities. views (Tensor): (B,) viewpoints.
        id_weight (Tensor): (N, D) W. view_weight (Tensor): (N * V, D) U.
        num_views (int): V. Defaults to 3.
        scale (float): s. Defaults to 30.
        margin_id (float): identity-level margin. Defaults to 0.3.
        margin_view (float): viewpoint-level margin. Defaults to 0.1.
        reg_weight (float): weight of the angular regulariser. Defaults to 1.
        view_targets (Tensor, optional): (B, N * V) soft targets for the viewpoint level (e.g.
            :func:`valsr_targets`, which "softens the hard margin"); one-hot when None.

    Returns:
        dict: ``loss_vaal_id`` (identity level), ``loss_vaal_view`` (viewpoint level),
        ``loss_vaal_reg`` (weighted regulariser), all scalars.
    """
    _check(view_cosine.shape[1], pids, views, num_views)
    cls = pids.long() * num_views + views.long()
    id_logits = margin_logits(id_cosine, pids, scale, margin_id)
    view_logits = margin_logits(view_cosine, cls, scale, margin_view)
    if view_targets is None:
        loss_view = F.cross_entropy(view_logits, cls)
    else:
        loss_view = soft_cross_entropy(view_logits, view_targets)
    return dict(
        loss_vaal_id=F.cross_entropy(id_logits, pids.long()),
        loss_vaal_view=loss_view,
        loss_vaal_reg=reg_weight * angular_prototype_regularizer(id_weight, view_weight, num_views))
