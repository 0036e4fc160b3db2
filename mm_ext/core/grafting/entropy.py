"""Layer weight entropy and the arctan grafting coefficient (spec B.2 steps 3-4, decisions 9, 11)."""
import math
from typing import Optional

import torch


def layer_entropy(weight: torch.Tensor, bins: int = 10, include_max: bool = True) -> float:
    """Entropy (natural log) of the histogram of a whole layer's weights.

    The flattened tensor's range [min, max] is split into ``bins`` equal-width bins
    [e_b, e_{b+1}) with e_b = min + b * (max - min) / bins; p_b = count_b / numel and
    H = -sum_b p_b ln p_b over the non-empty bins (empty bins contribute 0), so
    0 <= H <= ln(bins). Edges are computed in float64.

    Args:
        weight (Tensor): any shape; flattened.
        bins (int): number of bins. Defaults to 10.
        include_max (bool): count values at the top edge (the maximum) in the last bin
            (a correct histogram, default). False reproduces the official code, whose
            half-open bins drop the maximum value: it is still counted in numel but in no
            bin. Defaults to True.

    Returns:
        float: H. A constant tensor (max == min) has entropy 0 in both modes.
    """
    if bins < 1:
        raise ValueError(f'layer_entropy: bins must be >= 1, got {bins}')
    x = weight.detach().reshape(-1).to(torch.float64)
    n = x.numel()
    if n == 0:
        raise ValueError('layer_entropy: empty tensor')
    lo, hi = x.min(), x.max()
    if hi == lo:
        return 0.0
    step = (hi - lo) / bins
    interior = lo + step * torch.arange(1, bins, dtype=torch.float64)
    idx = torch.bucketize(x, interior, right=True)  # e_{i} <= x < e_{i+1}, x >= e_{bins-1} -> bins - 1
    counts = torch.bincount(idx, minlength=bins).to(torch.float64)
    if not include_max:
        top = lo + step * bins
        counts[bins - 1] -= (x >= top).sum()
    p = counts[counts > 0] / n
    return float(-(p * p.log()).sum())


def graft_coefficient(h_self: float, h_other: float, a: float = 0.4, c: float = 500.0,
                      decimals: Optional[int] = 2) -> float:
    """w = round(A / pi * arctan(c * (H_self - H_other)) + 0.5, decimals).

    The grafted weight is ``w * W_self + (1 - w) * W_other``; w lies in
    (0.5 - A/2, 0.5 + A/2) and the layer with the higher entropy keeps more of itself.

    Args:
        h_self (float): entropy of the receiving network's layer.
        h_other (float): entropy of the predecessor's layer.
        a (float): A. Defaults to 0.4.
        c (float): arctan slope; 500 = fxmeng/filter-grafting (default), 5 = Ensemble-Grafting.
            Defaults to 500.
        decimals (int | None): rounding of w as the official code (2); None keeps full precision.

    Returns:
        float: w.
    """
    w = a / math.pi * math.atan(c * (float(h_self) - float(h_other))) + 0.5
    return round(w, decimals) if decimals is not None else w
