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
* :func:`pair_classes`: the identity-viewpoint classes. Dense (all ``N * V``, Tencent's
  re-implementation, the default) or only the **observed (pid, view) pairs** of the training set
  (the official classifier): ``K`` classes, class ``k`` = (``pid[k]``, ``view[k]``). The targets
  above take it as ``classes``; "each other view of identity y" then means each other *observed*
  view of y (with none, that mass stays on the true class) and "the other identities" are the
  ``K - n_y`` classes of the other identities (``n_y`` = observed views of y).
* :func:`margin_logits`, :func:`angular_prototype_regularizer`, :func:`vaal_loss`: the
  viewpoint-aware angular loss (VAAL) on the hypersphere: additive cosine margins at the
  identity level (prototypes ``W_i``) and at the viewpoint level (prototypes ``U_{i,v}``), plus
  a regulariser pulling every ``U_{i,v}`` towards its ``W_i``. The paper's scale and margins are
  not confirmed (spec, open question 1): they are arguments.
"""
from typing import Dict, NamedTuple, Optional

import torch
import torch.nn.functional as F

__all__ = [
    'PairClasses', 'pair_classes', 'observed_pairs', 'valsr_targets', 'valsr_loss',
    'static_direction_lsr_targets', 'adaptive_lsr_targets', 'soft_cross_entropy', 'margin_logits', 'angular_prototype_regularizer', 'vaal_loss'
]


class PairClasses(NamedTuple):
    """Identity-viewpoint classes of the viewpoint-level classifier.

    Attributes:
        pid (Tensor): (K,) int64 identity of class k.
        view (Tensor): (K,) int64 viewpoint of class k.
        index (Tensor): (N, V) int64 class of (pid, view), -1 where that pair is not a class.
    """
    pid: torch.Tensor
    view: torch.Tensor
    index: torch.Tensor


def pair_classes(num_ids: int, num_views: int = 3,
                 observed: Optional[torch.Tensor] = None) -> PairClasses:
    """The (pid, view) classes, in (pid, view) order.

    Args:
        num_ids (int): N identities.
        num_views (int): V viewpoints. Defaults to 3.
        observed (Tensor, optional): (N, V) bool, the pairs that are classes; all when None
            (dense, ``K = N * V``, class of (i, v) = ``i * V + v``).

    Returns:
        PairClasses: ``pid`` (K,), ``view`` (K,), ``index`` (N, V).
    """
    if num_views < 2:
        raise ValueError(f'num_views must be >= 2, got {num_views}')
    if observed is None:
        observed = torch.ones(num_ids, num_views, dtype=torch.bool)
    if observed.shape != (num_ids, num_views) or observed.dtype != torch.bool:
        raise ValueError(f'observed must be a ({num_ids}, {num_views}) bool tensor, got '
                         f'{tuple(observed.shape)} {observed.dtype}')
    if len(torch.unique(observed.nonzero()[:, 0])) < 2:
        raise ValueError('the viewpoint classifier needs observed pairs of at least 2 identities')
    flat = observed.reshape(-1)
    cols = flat.nonzero()[:, 0]
    index = torch.full((num_ids * num_views, ), -1, dtype=torch.int64, device=observed.device)
    index[cols] = torch.arange(len(cols), device=observed.device)
    return PairClasses(cols // num_views, cols % num_views, index.view(num_ids, num_views))


def observed_pairs(pids: torch.Tensor, views: torch.Tensor, num_ids: int,
                   num_views: int = 3) -> torch.Tensor:
    """(N, V) bool: the (pid, view) pairs present among the given samples (views < 0 ignored)."""
    pids, views = torch.as_tensor(pids).long(), torch.as_tensor(views).long()
    known = views >= 0
    out = torch.zeros(num_ids, num_views, dtype=torch.bool)
    out[pids[known], views[known]] = True
    return out


def _check(num_classes: int, pids: torch.Tensor, views: torch.Tensor, num_views: int,
           classes: Optional[PairClasses] = None) -> PairClasses:
    if num_views < 2:
        raise ValueError(f'num_views must be >= 2, got {num_views}')
    if pids.shape != views.shape or pids.ndim != 1:
        raise ValueError(f'pids and views must be 1-D of equal length, got {tuple(pids.shape)} '
                         f'and {tuple(views.shape)}')
    if classes is None:
        if num_classes % num_views or num_classes <= num_views:
            raise ValueError(f'the viewpoint classifier needs num_ids * num_views classes with at '
                             f'least 2 identities; got {num_classes} classes for '
                             f'num_views={num_views}')
        classes = pair_classes(num_classes // num_views, num_views)
        classes = PairClasses(*(t.to(pids.device) for t in classes))
    elif len(classes.pid) != num_classes:
        raise ValueError(f'{num_classes} classifier outputs for {len(classes.pid)} pair classes')
    n = classes.index.shape[0]
    if pids.numel() and (int(pids.min()) < 0 or int(pids.max()) >= n):
        raise ValueError(f'pids must lie in [0, {n}), got range [{int(pids.min())}, {int(pids.max())}]')
    if views.numel() and (int(views.min()) < 0 or int(views.max()) >= num_views):
        raise ValueError(f'views must lie in [0, {num_views}) (missing labels must be filled before '
                         f'the loss), got range [{int(views.min())}, {int(views.max())}]')
    if pids.numel() and bool((classes.index[pids.long(), views.long()] < 0).any()):
        bad = (classes.index[pids.long(), views.long()] < 0).nonzero()[0, 0]
        raise ValueError(f'(pid {int(pids[bad])}, view {int(views[bad])}) is not an observed pair '
                         'class; drop such samples from the viewpoint-level loss')
    return classes


def _pair_layout(classes: PairClasses, pids: torch.Tensor, views: torch.Tensor):
    """(true class (B,), same-identity mask (B, K), observed views of y (B,))."""
    true = classes.index[pids.long(), views.long()]
    same = classes.pid[None] == pids.long()[:, None]
    return true, same, same.sum(1)


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
                  num_views: int = 3, epsilon: float = 0.2,
                  classes: Optional[PairClasses] = None) -> torch.Tensor:
    """VALSR soft targets (detached).

    Args:
        logits (Tensor): (B, K) scores of the identity-viewpoint classifier (``K = N * V`` when
            dense).
        pids (Tensor): (B,) int identity labels in ``[0, N)``.
        views (Tensor): (B,) int viewpoint labels in ``[0, V)``.
        num_views (int): V. Defaults to 3.
        epsilon (float): smoothing budget. Defaults to 0.2 (Tencent's re-implementation).
        classes (PairClasses, optional): the K classes (:func:`pair_classes`); dense when None.

    Returns:
        Tensor: (B, K) float32 targets, each row sums to 1.
    """
    b, k = logits.shape
    classes = _check(k, pids, views, num_views, classes)
    true, same, n_y = _pair_layout(classes, pids, views)
    if bool((n_y >= k).any()):
        raise ValueError('VALSR needs classes of at least one other identity')
    p = F.softmax(logits.detach().float(), dim=1)
    rows = torch.arange(b, device=logits.device)
    p_id = (p * same).sum(1)
    eps1 = epsilon * (1 - p_id)
    eps2 = epsilon * (1 - p[rows, true])
    others = n_y - 1  # other observed views of y
    q = torch.where(same, (eps1 / others.clamp(min=1))[:, None], (eps2 / (k - n_y))[:, None])
    q[rows, true] = 1 - eps2 - torch.where(others > 0, eps1, torch.zeros_like(eps1))
    return q


def valsr_loss(logits: torch.Tensor, pids: torch.Tensor, views: torch.Tensor,
               num_views: int = 3, epsilon: float = 0.2,
               classes: Optional[PairClasses] = None) -> torch.Tensor:
    """Cross-entropy against :func:`valsr_targets`. Shapes as there; returns a scalar."""
    return soft_cross_entropy(logits, valsr_targets(logits, pids, views, num_views, epsilon,
                                                    classes))


def static_direction_lsr_targets(num_classes: int, pids: torch.Tensor, views: torch.Tensor,
                                 num_views: int = 3, alpha: float = 0.6, beta: float = 0.15,
                                 classes: Optional[PairClasses] = None) -> torch.Tensor:
    """Official static "direction" label smoothing over identity-viewpoint classes.

    The true class gets ``alpha``, each other (observed) view of the same identity ``beta``, the
    rest ``1 - alpha - (n_y - 1) * beta`` is spread uniformly over the classes of the other
    identities.

    Args:
        num_classes (int): K (``N * V`` when dense).
        pids (Tensor): (B,) identity labels. views (Tensor): (B,) viewpoint labels.
        num_views (int): V. Defaults to 3.
        alpha (float): Defaults to 0.6. beta (float): Defaults to 0.15.
        classes (PairClasses, optional): the K classes; dense when None.

    Returns:
        Tensor: (B, K) float32 targets.
    """
    if 1 - alpha - (num_views - 1) * beta < 0:
        raise ValueError(f'alpha + (num_views - 1) * beta must be <= 1, got alpha={alpha}, beta={beta}')
    classes = _check(num_classes, pids, views, num_views, classes)
    true, same, n_y = _pair_layout(classes, pids, views)
    rest = 1 - alpha - (n_y - 1) * beta
    b = pids.shape[0]
    rows = torch.arange(b, device=pids.device)
    q = torch.where(same, torch.full_like(rest, beta, dtype=torch.float32)[:, None],
                    (rest / (num_classes - n_y)).float()[:, None])
    q[rows, true] = alpha
    return q


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
                                  num_views: int = 3,
                                  classes: Optional[PairClasses] = None) -> torch.Tensor:
    """Mean ``1 - cos(U_k, W_{pid(k)})`` over the identity-viewpoint prototypes.

    Args:
        id_weight (Tensor): (N, D) identity prototypes W.
        view_weight (Tensor): (K, D) viewpoint prototypes U (dense: row ``i * V + v``).
        num_views (int): V. Defaults to 3.
        classes (PairClasses, optional): the K classes; dense when None.

    Returns:
        Tensor: scalar in [0, 2].
    """
    n, d = id_weight.shape
    if classes is None:
        if view_weight.shape != (n * num_views, d):
            raise ValueError(f'view_weight must have shape ({n * num_views}, {d}) for {n} '
                             f'identities and {num_views} views, got {tuple(view_weight.shape)}')
        owner = torch.arange(n, device=id_weight.device).repeat_interleave(num_views)
    else:
        if view_weight.shape != (len(classes.pid), d):
            raise ValueError(f'view_weight must have shape ({len(classes.pid)}, {d}), got '
                             f'{tuple(view_weight.shape)}')
        owner = classes.pid
    w = F.normalize(id_weight, dim=1)[owner]
    u = F.normalize(view_weight, dim=1)
    return (1 - (u * w).sum(-1)).mean()


def vaal_loss(id_cosine: torch.Tensor, view_cosine: torch.Tensor, pids: torch.Tensor,
              views: torch.Tensor, id_weight: torch.Tensor, view_weight: torch.Tensor,
              num_views: int = 3, scale: float = 30.0, margin_id: float = 0.3,
              margin_view: float = 0.1, reg_weight: float = 1.0,
              view_targets: Optional[torch.Tensor] = None,
              classes: Optional[PairClasses] = None) -> Dict[str, torch.Tensor]:
    """Viewpoint-aware angular loss at identity and viewpoint level.

    Args:
        id_cosine (Tensor): (B, N) cosines to the identity prototypes W.
        view_cosine (Tensor): (B, K) cosines to the viewpoint prototypes U.
        pids (Tensor): (B,) identities. views (Tensor): (B,) viewpoints.
        id_weight (Tensor): (N, D) W. view_weight (Tensor): (K, D) U.
        num_views (int): V. Defaults to 3.
        scale (float): s. Defaults to 30.
        margin_id (float): identity-level margin. Defaults to 0.3.
        margin_view (float): viewpoint-level margin. Defaults to 0.1.
        reg_weight (float): weight of the angular regulariser. Defaults to 1.
        view_targets (Tensor, optional): (B, K) soft targets for the viewpoint level (e.g.
            :func:`valsr_targets`, which "softens the hard margin"); one-hot when None.
        classes (PairClasses, optional): the K classes; dense when None.

    Returns:
        dict: ``loss_vaal_id`` (identity level), ``loss_vaal_view`` (viewpoint level),
        ``loss_vaal_reg`` (weighted regulariser), all scalars.
    """
    classes = _check(view_cosine.shape[1], pids, views, num_views, classes)
    cls = classes.index[pids.long(), views.long()]
    id_logits = margin_logits(id_cosine, pids, scale, margin_id)
    view_logits = margin_logits(view_cosine, cls, scale, margin_view)
    if view_targets is None:
        loss_view = F.cross_entropy(view_logits, cls)
    else:
        loss_view = soft_cross_entropy(view_logits, view_targets)
    return dict(
        loss_vaal_id=F.cross_entropy(id_logits, pids.long()),
        loss_vaal_view=loss_view,
        loss_vaal_reg=reg_weight * angular_prototype_regularizer(id_weight, view_weight, num_views,
                                                                 classes))
