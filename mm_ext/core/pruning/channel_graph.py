"""Which conv output channels can physically disappear, traced with torch.fx.

A conv's output channel n can be removed when every path from the conv output
reaches only channel-wise ops (BatchNorm, activations, pooling, dropout, flatten of
a 1×1 map) and ends in convs/linears that read channel n as an *input* channel.
Any other op (a residual ``add``, ``cat``, the model output, ...) couples the
channel to something else, so the group is not removable (spec A.5, A.7).
"""
import operator
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.fx import GraphModule, Tracer
from torch.fx.passes.shape_prop import ShapeProp

from .stripe_conv import StripeConv2d

__all__ = ['ChannelGroup', 'trace_channel_groups']

_CHANNELWISE_MODULES = (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU,
                        nn.Hardswish, nn.Sigmoid, nn.Tanh, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                        nn.AdaptiveMaxPool2d, nn.Dropout, nn.Dropout2d, nn.Identity, nn.Flatten)
# functional ops acting channel by channel; those mapping 0 to 0 keep a dead (zero) channel zero
_ZERO_PRESERVING_FUNCS = {F.relu, torch.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, F.hardswish, torch.tanh,
                          F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.dropout,
                          torch.flatten, torch.mean}
_NONZERO_FUNCS = {torch.sigmoid, F.sigmoid, F.hardsigmoid, torch.exp, torch.cos}
_CHANNELWISE_FUNCS = _ZERO_PRESERVING_FUNCS | _NONZERO_FUNCS
_SHAPE_ONLY_METHODS = {'size', 'dim', 'numel'}
_ZERO_PRESERVING_METHODS = {'relu', 'relu_', 'view', 'reshape', 'flatten', 'contiguous', 'mean', 'clone', 'tanh'}
_NONZERO_METHODS = {'sigmoid', 'sigmoid_', 'exp'}
_CHANNELWISE_METHODS = _ZERO_PRESERVING_METHODS | _NONZERO_METHODS


@dataclass
class ChannelGroup:
    """Coupling of one conv's output channels.

    Attributes:
        producer (str): name of the conv whose output channels are described.
        bn (str | None): BatchNorm applied directly to the conv output (masked by
            filter liveness during training when ``removable``).
        chain (list[str]): channel-wise modules on the way to the consumers, in order.
        consumers (list[tuple[str, str]]): ``(module name, 'conv' | 'linear')`` reading
            the channels as input channels / input features.
        removable (bool): whether dead output channels may be physically removed.
        reason (str): why not, when ``removable`` is False.
        nonzero_ops (list[str]): functional ops on the way that map 0 to a non-zero value
            (e.g. ``sigmoid``): a dead channel is then not zero at the consumers and is kept.
    """
    producer: str
    bn: Optional[str] = None
    chain: List[str] = field(default_factory=list)
    consumers: List[Tuple[str, str]] = field(default_factory=list)
    removable: bool = True
    reason: str = ''
    nonzero_ops: List[str] = field(default_factory=list)


class _LeafTracer(Tracer):

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        # norm subclasses of host libraries (e.g. a channels-first LayerNorm asserting x.dim()) stay leaves
        if isinstance(m, (nn.Conv2d, StripeConv2d, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.LayerNorm,
                          nn.GroupNorm)):
            return True
        return super().is_leaf_module(m, qualname)


def _is_conv(m: nn.Module) -> bool:
    return isinstance(m, (nn.Conv2d, StripeConv2d))


def trace_channel_groups(root: nn.Module, example_input: torch.Tensor) -> Dict[str, ChannelGroup]:
    """Trace ``root`` (a module mapping an image batch to a tensor) and group every conv.

    Args:
        root (nn.Module): the tensor path to analyse (e.g. backbone -> neck -> head fc).
        example_input (Tensor): (B, C, H, W) input used for shape propagation
            (run once in eval mode under ``no_grad``; BN statistics untouched).

    Returns:
        dict[str, ChannelGroup]: keyed by conv name (names relative to ``root``).

    Raises:
        torch.fx.proxy.TraceError and friends when ``root`` is not fx-traceable.
    """
    graph = _LeafTracer().trace(root)
    gm = GraphModule(root, graph)
    was_training = {m: m.training for m in root.modules()}
    root.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example_input)
    finally:
        for m, t in was_training.items():
            m.train(t)
    modules = dict(root.named_modules())
    producers_of: Dict[str, str] = {}
    groups: Dict[str, ChannelGroup] = {}
    for node in gm.graph.nodes:
        if node.op != 'call_module' or not _is_conv(modules[node.target]):
            continue
        name = node.target
        if name in groups:  # a module called twice: channels are shared by two call sites
            groups[name].removable, groups[name].reason = False, 'module called more than once'
            continue
        group = ChannelGroup(producer=name)
        groups[name] = group
        n_out = modules[name].out_channels
        if getattr(modules[name], 'groups', 1) != 1:
            group.removable = False
            group.reason = f'grouped conv (groups={modules[name].groups}): output channels are tied to the groups'
            continue
        stack = [(u, node) for u in node.users]
        seen = set()

        def fail(why):
            group.removable = False
            group.reason = group.reason or why

        while stack:
            cur, prev = stack.pop()
            if cur in seen:
                continue
            seen.add(cur)
            meta = cur.meta.get('tensor_meta')
            shape = tuple(meta.shape) if meta is not None and hasattr(meta, 'shape') else None
            if cur.op == 'call_module':
                m = modules[cur.target]
                in_meta = prev.meta.get('tensor_meta')
                in_shape = tuple(in_meta.shape) if in_meta is not None and hasattr(in_meta, 'shape') else None
                if _is_conv(m):
                    if getattr(m, 'groups', 1) != 1:
                        fail(f'feeds grouped conv {cur.target}')
                    elif in_shape is None or len(in_shape) != 4:
                        fail(f'unknown input shape of {cur.target}')
                    else:
                        group.consumers.append((cur.target, 'conv'))
                    continue
                if isinstance(m, nn.Linear):
                    if in_shape is not None and len(in_shape) == 2 and in_shape[1] == n_out:
                        group.consumers.append((cur.target, 'linear'))
                    else:
                        fail(f'feeds linear {cur.target} with input shape {in_shape}')
                    continue
                if isinstance(m, _CHANNELWISE_MODULES):
                    if isinstance(m, nn.modules.batchnorm._BatchNorm) and prev is node and group.bn is None:
                        group.bn = cur.target
                    group.chain.append(cur.target)
                    ok = True
                else:
                    ok = False
            elif cur.op == 'call_function':
                if cur.target is getattr:  # x.shape / x.dtype: reads metadata, not channel values
                    continue
                ok = cur.target in _CHANNELWISE_FUNCS
                if cur.target in _NONZERO_FUNCS:
                    group.nonzero_ops.append(getattr(cur.target, '__name__', str(cur.target)))
            elif cur.op == 'call_method':
                if cur.target in _SHAPE_ONLY_METHODS:
                    continue
                ok = cur.target in _CHANNELWISE_METHODS
                if cur.target in _NONZERO_METHODS:
                    group.nonzero_ops.append(f'.{cur.target}()')
            else:
                ok = False
            if not ok:
                tgt = cur.target if cur.op != 'call_function' else getattr(cur.target, '__name__', cur.target)
                residual = cur.target in (operator.add, operator.iadd)
                fail('reaches a residual add' if residual else f'reaches {cur.op} {tgt}')
                continue
            if shape is None or len(shape) not in (2, 4) or shape[1] != n_out:
                fail(f'{cur.name} does not preserve the channel axis (shape {shape})')
                continue
            stack.extend((u, cur) for u in cur.users)
        for cname, _ in group.consumers:
            if producers_of.setdefault(cname, name) != name:
                fail(f'consumer {cname} is fed by several producers')
                groups[producers_of[cname]].removable = False
    for g in groups.values():
        if g.removable and not g.consumers:
            g.removable, g.reason = False, 'no consumer found'
    return groups
