"""Graft two state dicts: layer-level (entropy) and filter-level (BN gamma) coefficients (spec B.2)."""
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

import torch

from .entropy import graft_coefficient, layer_entropy

Coef = Union[float, torch.Tensor]


def layer_coefficients(own: Mapping[str, torch.Tensor], other: Mapping[str, torch.Tensor],
                       drivers: Mapping[str, str], a: float = 0.4, c: float = 500.0,
                       decimals: Optional[int] = 2, bins: int = 10,
                       include_max: bool = True) -> Tuple[Dict[str, float], Dict[str, Tuple[float, float, float]]]:
    """Coefficient w of every entry of ``own`` from its driver's entropies.

    Args:
        own, other (Mapping[str, Tensor]): the receiving network's and the predecessor's state.
        drivers (Mapping[str, str]): key -> driver key (``structural_drivers`` / ``reference_drivers``).
        a, c, decimals: see :func:`graft_coefficient`.
        bins, include_max: see :func:`layer_entropy`.

    Returns:
        tuple: ``coefs`` {key: w} and ``layers`` {driver key: (H_own, H_other, w)}.
    """
    layers: Dict[str, Tuple[float, float, float]] = {}
    coefs: Dict[str, float] = {}
    for key in own:
        d = drivers.get(key)
        if d is None:
            raise KeyError(f'layer_coefficients: no driver for state-dict key {key!r}')
        if d not in layers:
            if d not in own or d not in other:
                raise KeyError(f'layer_coefficients: driver {d!r} (of {key!r}) is not in both state dicts')
            h1 = layer_entropy(own[d], bins, include_max)
            h2 = layer_entropy(other[d], bins, include_max)
            layers[d] = (h1, h2, graft_coefficient(h1, h2, a, c, decimals))
        coefs[key] = layers[d][2]
    return coefs, layers


def _gamma_w(g_own: torch.Tensor, g_other: torch.Tensor) -> torch.Tensor:
    a, b = g_own.detach().abs().double(), g_other.detach().abs().double()
    s = a + b
    return torch.where(s > 0, a / torch.where(s > 0, s, torch.ones_like(s)), torch.full_like(s, 0.5))


def filter_coefficients(own: Mapping[str, torch.Tensor], other: Mapping[str, torch.Tensor],
                        pairs: Mapping[str, Tuple[Optional[str], Optional[str]]], base: Mapping[str, float],
                        input_side: bool = False) -> Dict[str, Coef]:
    """Per-channel coefficients from BN gamma (filter-level grafting, spec decision 13).

    For a conv ``c`` followed by BN ``b``: w_o = |gamma_own_o| / (|gamma_own_o| + |gamma_other_o|)
    (0.5 where both are 0). Filter o of ``c.weight`` / ``c.bias`` and channel o of ``b``'s weight,
    bias and running statistics are blended with w_o. With ``input_side`` the conv weight's input
    slice i is additionally blended with the previous BN's w_i, i.e. w[o, i] = w_o * w_i (the result
    of applying the input-side blend and then the output-side blend to the same tensor). Every other
    entry (classifier, BN counters, convs without a BN) keeps its coefficient from ``base``.

    Args:
        own, other (Mapping[str, Tensor]): states.
        pairs (Mapping): conv name -> (BN after it, BN before it), from :func:`conv_bn_pairs`.
        base (Mapping[str, float]): layer-level coefficients of every key.
        input_side (bool): also use the previous BN's coefficient for input slices. Defaults to False.

    Returns:
        dict[str, float | Tensor]: key -> w, a tensor broadcastable to the entry where per channel.
    """
    coefs: Dict[str, Coef] = dict(base)
    for conv, (bn, prev_bn) in pairs.items():
        if bn is None:
            continue
        w = _gamma_w(own[f'{bn}.weight'], other[f'{bn}.weight'])
        for suffix in ('weight', 'bias', 'running_mean', 'running_var'):
            if f'{bn}.{suffix}' in own:
                coefs[f'{bn}.{suffix}'] = w
        weight = own[f'{conv}.weight']
        if weight.shape[0] != w.numel():
            raise ValueError(f'filter_coefficients: {conv}.weight has {weight.shape[0]} filters but {bn} has '
                             f'{w.numel()} channels')
        cw = w.view(-1, *([1] * (weight.dim() - 1)))
        if input_side and prev_bn is not None:
            wi = _gamma_w(own[f'{prev_bn}.weight'], other[f'{prev_bn}.weight'])
            if wi.numel() == weight.shape[1]:  # ungrouped conv reading the previous BN's channels
                cw = cw * wi.view(1, -1, *([1] * (weight.dim() - 2)))
        coefs[f'{conv}.weight'] = cw
        if f'{conv}.bias' in own:
            coefs[f'{conv}.bias'] = w
    return coefs


def graft_state_dict(own: Mapping[str, torch.Tensor], other: Mapping[str, torch.Tensor],
                     coefs: Mapping[str, Coef]) -> Dict[str, torch.Tensor]:
    """``w * own + (1 - w) * other`` for every entry (new tensors; inputs untouched).

    Floating entries are blended in their own dtype. Integer entries (BN ``num_batches_tracked``)
    are blended in float64, rounded and cast back.

    Raises:
        KeyError: an entry is missing from ``other`` or ``coefs``.
        ValueError: shapes differ.
    """
    out = {}
    for k, x in own.items():
        if k not in other:
            raise KeyError(f'graft_state_dict: {k!r} is missing from the other network')
        if k not in coefs:
            raise KeyError(f'graft_state_dict: no coefficient for {k!r}')
        y, w = other[k], coefs[k]
        if x.shape != y.shape:
            raise ValueError(f'graft_state_dict: {k!r} has shape {tuple(x.shape)} here and {tuple(y.shape)} '
                             'in the other network (different architectures?)')
        if x.is_floating_point():
            w = w.to(x.dtype) if torch.is_tensor(w) else w
            out[k] = w * x + (1 - w) * y.to(x.dtype)
        else:
            w = w.double() if torch.is_tensor(w) else w
            out[k] = torch.round(w * x.double() + (1 - w) * y.double()).to(x.dtype)
    return out


def ring_graft(states: List[Mapping[str, torch.Tensor]],
               coef_fn: Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]], Mapping[str, Coef]]
               ) -> List[Dict[str, torch.Tensor]]:
    """Ring, pull from the predecessor: net k is grafted with net k-1 (net 0 with net N-1), all from
    the pre-graft states (a synchronous per-epoch exchange)."""
    n = len(states)
    if n < 2:
        return [dict(s) for s in states]
    return [graft_state_dict(states[k], states[k - 1], coef_fn(states[k], states[k - 1])) for k in range(n)]
