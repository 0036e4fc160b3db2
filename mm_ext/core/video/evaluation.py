"""Small-sample statistics and a cross-validated linear probe for the scene-bias experiment.

* :func:`t_quantile` / :func:`summarize` / :func:`paired_summary` - mean, sample
  standard deviation (ddof = 1) and Student-t 95 % interval over seeds, and the
  same for per-seed differences between two methods (paired by seed).
* :func:`linear_probe` - multinomial logistic regression on standardised frozen
  features whose L2 weight is chosen by k-fold cross-validation on the probe's
  training set (so the probe cannot simply memorise few samples in many dims).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

__all__ = ['t_quantile', 'summarize', 'paired_summary', 'fit_logistic', 'linear_probe']


def _t_cdf(x: float, df: int, steps: int = 4000) -> float:
    """Student-t CDF by Simpson integration of the density from 0 to x (x >= 0)."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    h = x / steps
    s = 0.0
    for i in range(steps + 1):
        w = 1 if i in (0, steps) else (4 if i % 2 else 2)
        s += w * (1 + (i * h) ** 2 / df) ** (-(df + 1) / 2)
    return 0.5 + c * s * h / 3


def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t with ``df`` degrees of freedom, p in (0.5, 1) (bisection)."""
    if not 0.5 < p < 1 or df < 1:
        raise ValueError(f't_quantile: need 0.5 < p < 1 and df >= 1, got {p}, {df}')
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def summarize(values: Sequence[float], level: float = 0.95) -> Dict[str, float]:
    """Mean, sample std (ddof 1) and the two-sided Student-t interval of the mean.

    Returns:
        dict: n, mean, std, half (interval half width), lo, hi. With one value
        std and half are NaN.
    """
    v = [float(x) for x in values]
    n = len(v)
    if n == 0:
        raise ValueError('summarize: no values')
    mean = sum(v) / n
    if n == 1:
        return dict(n=1, mean=mean, std=float('nan'), half=float('nan'), lo=float('nan'),
                    hi=float('nan'))
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return dict(n=n, mean=mean, std=std, half=half, lo=mean - half, hi=mean + half)


def paired_summary(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Dict[str, float]:
    """:func:`summarize` of the per-pair differences ``a_i - b_i`` (same seed i)."""
    if len(a) != len(b):
        raise ValueError(f'paired_summary: {len(a)} vs {len(b)} values; pair them by seed')
    return summarize([x - y for x, y in zip(a, b)], level)


def fit_logistic(z: torch.Tensor, y: torch.Tensor, l2: float, num_classes: int,
                 max_iter: int = 200, tolerance_grad: float = 1e-9
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression, loss = CE + l2 * |W|^2, full-batch L-BFGS from zero.

    The objective is strictly convex for l2 > 0, so the result does not depend
    on initialisation or seed.

    Returns:
        tuple[Tensor, Tensor]: W (D, num_classes), b (num_classes,).
    """
    z = z.double()
    w = torch.zeros(z.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20,
                            line_search_fn='strong_wolfe', tolerance_grad=tolerance_grad,
                            tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def linear_probe(ftr: torch.Tensor, ytr: torch.Tensor,
                 tests: Sequence[Tuple[torch.Tensor, torch.Tensor]],
                 l2_grid: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0),
                 folds: int = 5, seed: int = 0, num_classes: Optional[int] = None,
                 max_iter: int = 100) -> Tuple[List[float], float]:
    """Linear probe with its L2 weight chosen by stratified k-fold cross-validation.

    Features are standardised with the training mean / std; for each ``l2`` the
    mean held-out accuracy over ``folds`` folds is computed, the best (the
    larger l2 on ties) is refitted on the whole training set.

    Args:
        ftr (Tensor): (N, D) training features. ytr (Tensor): (N,) labels.
        tests (Sequence[tuple]): (features (M, D), labels (M,)) to evaluate.
        l2_grid (Sequence[float]): candidate L2 weights.
        folds (int): cross-validation folds. Defaults to 5.
        seed (int): seed of the fold assignment. Defaults to 0.
        num_classes (int, optional): defaults to max label + 1.
        max_iter (int): L-BFGS iterations per fit (gradient tolerance 1e-6).
            Defaults to 100.

    Returns:
        tuple[list[float], float]: accuracy (%) on each test pair, chosen l2.
    """
    c = int(num_classes) if num_classes is not None else int(ytr.max()) + 1
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    z = ((ftr - mu) / sd).double()
    g = torch.Generator().manual_seed(seed)
    fold = torch.empty(len(ytr), dtype=torch.long)
    for cls in range(c):  # stratified: each class spread evenly over the folds
        idx = (ytr == cls).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        fold[idx] = torch.arange(len(idx)) % folds
    best, best_l2 = -1.0, None
    for l2 in sorted(l2_grid):
        accs = []
        for f in range(folds):
            tr, va = fold != f, fold == f
            if va.sum() == 0:
                continue
            w, b = fit_logistic(z[tr], ytr[tr], l2, c, max_iter, 1e-6)
            accs.append(((z[va] @ w + b).argmax(1) == ytr[va]).double().mean().item())
        acc = sum(accs) / len(accs)
        if acc >= best:
            best, best_l2 = acc, l2
    w, b = fit_logistic(z, ytr, best_l2, c, max_iter, 1e-6)
    out = []
    for f, y in tests:
        zt = ((f - mu) / sd).double()
        out.append(100.0 * ((zt @ w + b).argmax(1) == y).double().mean().item())
    return out, best_l2
