"""Physical pruning of a Filter-Skeleton model (PFF, arXiv 2009.14410, Sec. 3.3; spec A.7, E.1).

1. fold ``I`` into ``W`` and zero stripes with ``|I| ≤ δ`` (the exact "masked dense" model);
2. remove filters whose stripes are all dead, with their BN channels and the input
   channels / features they fed, wherever the channel is removable (no residual
   coupling, see :mod:`.channel_graph`) and the dead channel is exactly zero after
   its BN/activation (so outputs are unchanged);
3. turn every pruned conv into a :class:`PrunedConv2d` (stripe storage, fastest form).
"""
import warnings
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from .channel_graph import ChannelGroup, trace_channel_groups
from .filter_skeleton_conv import FilterSkeletonConv2d
from .pruned_conv import PrunedConv2d
from .stripe_conv import StripeConv2d
from .surgery import _set_child

__all__ = ['stripe_masks', 'fold_filter_skeleton', 'prune_filter_skeleton', 'reshape_to_state_dict',
           'count_params_flops']


@torch.no_grad()
def stripe_masks(model: nn.Module, threshold: float) -> Dict[str, torch.Tensor]:
    """Live-stripe masks ``|I| > δ`` (N, K, K) bool for every regularised skeleton conv;
    unregularised ones (shortcut projections) keep every stripe."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, FilterSkeletonConv2d):
            fs = m.filter_skeleton
            out[name] = (fs.abs() > threshold) if m.regularized else torch.ones_like(fs, dtype=torch.bool)
    return out


@torch.no_grad()
def fold_filter_skeleton(model: nn.Module, threshold: float) -> Dict[str, torch.Tensor]:
    """In place: every skeleton conv becomes ``nn.Conv2d`` with weight ``W ⊙ I ⊙ mask``.

    Returns:
        dict[str, Tensor]: the stripe masks (N, K, K) by conv name.
    """
    masks = stripe_masks(model, threshold)
    for name, mask in masks.items():
        m = model.get_submodule(name)
        conv = m.to_conv(fold=True)
        conv.weight.mul_(mask.unsqueeze(1).to(conv.weight.dtype))
        _set_child(model, name, conv)
    return masks


@torch.no_grad()
def _dead_channel_value(model: nn.Module, group: ChannelGroup, conv: nn.Conv2d) -> torch.Tensor:
    """Value (N,) that a filter with no live stripe produces after the BN/activation chain."""
    v = conv.bias.detach().clone() if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
    v = v.view(1, -1, 1, 1)
    for name in group.chain:
        m = model.get_submodule(name)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            was = m.training
            m.eval()
            v = m(v)
            m.train(was)
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout,
                            nn.Dropout2d, nn.Identity, nn.Flatten)):
            continue  # constant maps stay constant
        else:
            v = m(v)
    return v.flatten()


def _slice_param(module: nn.Module, pname: str, keep: torch.Tensor, dim: int) -> None:
    p = getattr(module, pname, None)
    if p is None:
        return
    new = p.detach().index_select(dim, keep.nonzero().flatten()).clone()
    if isinstance(p, nn.Parameter):
        setattr(module, pname, nn.Parameter(new, requires_grad=p.requires_grad))
    else:
        setattr(module, pname, new)


@torch.no_grad()
def prune_filter_skeleton(model: nn.Module, example_input: torch.Tensor, threshold: float = 0.01,
                          form: str = 'auto', root: Optional[nn.Module] = None,
                          groups: Optional[Dict[str, ChannelGroup]] = None) -> Dict[str, dict]:
    """Physically prune a trained Filter-Skeleton model in place.

    Args:
        model (nn.Module): model holding :class:`FilterSkeletonConv2d` modules; modified in place.
        example_input (Tensor): (B, C, H, W) batch for tracing ``root``.
        threshold (float): δ. Defaults to 0.01.
        form (str): :class:`PrunedConv2d` form (``'auto'`` measures per layer). Defaults to 'auto'.
        root (nn.Module, optional): fx-traceable module (image -> tensor) whose submodules
            are ``model``'s (names relative to ``root`` must equal names in ``model``).
            Defaults to ``model``.
        groups (dict[str, ChannelGroup], optional): precomputed channel coupling; skips tracing.

    Returns:
        dict[str, dict]: per pruned conv: ``filters`` (kept, total), ``stripes`` (kept, total),
        ``in_channels`` (kept, total), ``removable`` (bool), ``reason`` (str).

    Note:
        When tracing fails no channel is removed (a warning is issued); stripes are
        still pruned, so the result stays exact.
    """
    root = model if root is None else root
    masks = fold_filter_skeleton(model, threshold)
    if groups is None:
        try:
            groups = trace_channel_groups(root, example_input)
        except Exception as exc:  # noqa: BLE001 - any tracing failure degrades to stripe-only pruning
            warnings.warn(f'prune_filter_skeleton: channel tracing failed ({type(exc).__name__}: {exc}); '
                          'dead filters are kept (stripe pruning only).')
            groups = {}
    keep_out: Dict[str, torch.Tensor] = {}
    keep_in: Dict[str, torch.Tensor] = {}
    for name, mask in masks.items():
        g = groups.get(name)
        if g is None or not g.removable:
            continue
        conv = model.get_submodule(name)
        dead = ~mask.any(dim=(1, 2))
        removable = dead & (_dead_channel_value(model, g, conv) == 0)
        keep = ~removable
        if not keep.any():
            keep[0] = True  # keep one (zero) channel so every shape stays non-empty (spec decision 5)
        if keep.all():
            continue
        keep_out[name] = keep
        for cname, _ in g.consumers:
            keep_in[cname] = keep
    # slice producers, their BNs, and consumers
    for name, keep in keep_out.items():
        conv = model.get_submodule(name)
        _slice_param(conv, 'weight', keep, 0)
        _slice_param(conv, 'bias', keep, 0)
        conv.out_channels = int(keep.sum())
        masks[name] = masks[name][keep]
        bn_name = groups[name].bn
        if bn_name is not None:
            bn = model.get_submodule(bn_name)
            for pname in ('weight', 'bias', 'running_mean', 'running_var'):
                _slice_param(bn, pname, keep, 0)
            bn.num_features = int(keep.sum())
    for cname, keep in keep_in.items():
        m = model.get_submodule(cname)
        if isinstance(m, StripeConv2d):
            raise ValueError(f'prune_filter_skeleton: consumer {cname!r} is already pruned; prune a fresh model')
        _slice_param(m, 'weight', keep, 1)
        if isinstance(m, nn.Linear):
            m.in_features = int(keep.sum())
        else:
            m.in_channels = int(keep.sum())
    report = {}
    for name, mask in masks.items():
        conv = model.get_submodule(name)
        pc = PrunedConv2d.from_dense(conv.weight, mask, conv.bias, conv.stride[0], conv.padding[0], form=form)
        pc.train(conv.training)
        _set_child(model, name, pc)
        g = groups.get(name)
        n_total = int(keep_out[name].numel()) if name in keep_out else conv.out_channels
        c_total = int(keep_in[name].numel()) if name in keep_in else conv.in_channels
        report[name] = dict(filters=(conv.out_channels, n_total), stripes=(int(mask.sum()), n_total * mask[0].numel()),
                            in_channels=(conv.in_channels, c_total), removable=bool(g and g.removable),
                            reason='' if g is None else g.reason)
    return report


def reshape_to_state_dict(model: nn.Module, state_dict: Dict[str, torch.Tensor], prefix: str = '') -> int:
    """Restructure ``model`` in place so that a pruned ``state_dict`` loads into it.

    Modules with a ``<name>.stripe_mask`` entry become :class:`PrunedConv2d` of that mask
    (stride/padding taken from the existing module); any other module whose own
    parameters/buffers differ in shape from the state dict gets tensors of the stored
    shape (and its ``num_features`` / ``in_channels`` / ``out_channels`` /
    ``in_features`` / ``out_features`` updated). Values are *not* loaded.

    Returns:
        int: number of modules changed.
    """
    changed = 0
    for name, m in list(model.named_modules()):
        key = f'{prefix}{name}.' if name else prefix
        mask = state_dict.get(key + 'stripe_mask')
        if mask is not None and not (isinstance(m, StripeConv2d) and m.stripe_mask.shape == mask.shape
                                     and torch.equal(m.stripe_mask.cpu(), mask.cpu())):
            stride = m.stride if isinstance(m.stride, int) else m.stride[0]
            padding = m.padding if isinstance(m.padding, int) else m.padding[0]
            w = state_dict[key + 'stripe_weight']
            ref = next(iter(m.parameters()), w)
            new = PrunedConv2d(w.shape[1], mask, stride, padding, bias=(key + 'bias') in state_dict,
                               dtype=ref.dtype, device=ref.device)
            new.train(m.training)
            _set_child(model, name, new)
            changed += 1
            continue
        if mask is not None:
            continue
        touched = False
        for pname, t in list(m._parameters.items()) + list(m._buffers.items()):
            if t is None or (key + pname) not in state_dict:
                continue
            target = state_dict[key + pname]
            if tuple(target.shape) == tuple(t.shape):
                continue
            new_t = torch.zeros(target.shape, dtype=t.dtype, device=t.device)
            if pname in m._parameters:
                m._parameters[pname] = nn.Parameter(new_t, requires_grad=t.requires_grad)
            else:
                m._buffers[pname] = new_t
            touched = True
        if touched:
            changed += 1
            w = m._parameters.get('weight')
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and w is not None:
                m.num_features = w.shape[0]
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.num_features = m.running_mean.shape[0]
            elif isinstance(m, nn.Conv2d):
                m.out_channels, m.in_channels = w.shape[0], w.shape[1] * m.groups
            elif isinstance(m, nn.Linear):
                m.out_features, m.in_features = w.shape
    return changed


@torch.no_grad()
def count_params_flops(model: nn.Module, example_input: torch.Tensor,
                       forward=None) -> Tuple[int, int]:
    """Parameters and FLOPs (2 × multiply-adds of convs and linears, official counter's convention).

    Pruned convs count only live stripes: 2 · N' · C · H_out · W_out (spec A.8). Filter-Skeleton
    parameters are not counted (they are folded away at deployment).

    Args:
        model (nn.Module): model whose parameters are counted.
        example_input (Tensor): (1, C, H, W); FLOPs are per image.
        forward (callable, optional): ``forward(x)`` to run instead of ``model(x)``.

    Returns:
        tuple[int, int]: (params, FLOPs per image).
    """
    params = sum(p.numel() for n, p in model.named_parameters() if not n.endswith('filter_skeleton'))
    flops = [0]

    def hook(m, inp, out):
        b = out.shape[0]
        if isinstance(m, StripeConv2d):
            flops[0] += 2 * m.num_stripes * m.in_channels * out[0, 0].numel()
        elif isinstance(m, nn.Conv2d):
            flops[0] += 2 * m.weight.numel() * out[0, 0].numel()
        elif isinstance(m, nn.Linear):
            flops[0] += 2 * m.weight.numel() * (out.numel() // b // m.out_features)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, StripeConv2d, nn.Linear))]
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        (forward or model)(example_input[:1])
    finally:
        for m, t in modes.items():
            m.train(t)
        for h in handles:
            h.remove()
    return params, flops[0]
