"""Invalid-filter statistics (filter L1 norm below a threshold, as the official counting script)."""
from typing import Dict, Iterable, Mapping, Optional

import torch


def invalid_filter_stats(state: Mapping[str, torch.Tensor], threshold: float = 0.01,
                         keys: Optional[Iterable[str]] = None) -> Dict[str, object]:
    """Count filters whose L1 norm sum |W[o]| is below ``threshold``, per conv layer.

    Args:
        state (Mapping[str, Tensor]): a state dict.
        threshold (float): L1-norm threshold (the README uses 0.1 and 0.01). Defaults to 0.01.
        keys (Iterable[str] | None): conv weight keys to count. Default: every 4-D floating
            ``*.weight`` entry (all conv weights; the official script takes keys containing
            ``conv``, which misses e.g. ``downsample.0``).

    Returns:
        dict: ``layers`` {key: (invalid, total)}, ``invalid``, ``total``, ``ratio``.
    """
    if keys is None:
        keys = [k for k, v in state.items()
                if k.endswith('weight') and torch.is_tensor(v) and v.dim() == 4 and v.is_floating_point()]
    layers = {}
    for k in keys:
        w = state[k]
        if w.dim() < 2:
            raise ValueError(f'invalid_filter_stats: {k} has shape {tuple(w.shape)}, not a conv weight')
        l1 = w.detach().abs().reshape(w.shape[0], -1).sum(1)
        layers[k] = (int((l1 < threshold).sum()), int(w.shape[0]))
    inv = sum(v[0] for v in layers.values())
    tot = sum(v[1] for v in layers.values())
    return {'layers': layers, 'invalid': inv, 'total': tot, 'ratio': inv / tot if tot else 0.0}
