"""Which conv "drives" (supplies the coefficient of) each state-dict entry (spec B.2 step 5, decision 12).

Official rule (``reference_drivers``): walk the state dict in order; an entry whose key contains
``conv`` gets its own coefficient, every other entry inherits the most recent ``conv`` entry's.
mmpretrain/torchvision names defeat it (``downsample.0``, ``norm1``, ``head.fc``; a stem named
``stem.0`` makes the first entries driverless).

Structural rule (``structural_drivers``, default): one forward pass with hooks records the
execution order of the modules and which tensor each conv reads. Every conv is a driver except a
conv that reads the same tensor as an earlier conv (following parameter-free modules such as
pooling, so ``avg_down`` shortcuts count): that is a parallel branch, i.e. a residual projection
shortcut, which inherits the preceding driver as in the official code. Every other entry (BN
parameters and running statistics, classifier, ...) inherits the last driver executed before its
module; entries owned by modules that never run inherit from the nearest preceding module in
registration order; entries before the first driver take the first driver's coefficient.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd


@dataclass
class _Trace:
    order: Dict[str, int] = field(default_factory=dict)  # module name -> first pre-forward position
    drivers: List[str] = field(default_factory=list)  # driver conv names in execution order
    shortcuts: List[str] = field(default_factory=list)
    conv_bn: Dict[str, Optional[str]] = field(default_factory=dict)  # conv -> BN reading its output
    conv_prev_bn: Dict[str, Optional[str]] = field(default_factory=dict)  # conv -> BN whose output it reads


def _trace(model: nn.Module, forward: Callable[[], object]) -> _Trace:
    tr = _Trace()
    modules = dict(model.named_modules())
    names = {id(m): n for n, m in modules.items()}
    keep = []  # hold every tensor seen so that ids stay unique during the pass
    root: Dict[int, int] = {}  # tensor id -> id of the tensor it passes through unchanged in channels
    producer: Dict[int, Tuple[str, str]] = {}  # root id -> ('conv' | 'bn', module name)
    consumed: Dict[int, str] = {}  # root id -> first conv reading it

    def first_tensor(obj):
        if torch.is_tensor(obj):
            return obj
        if isinstance(obj, (tuple, list)) and obj and torch.is_tensor(obj[0]):
            return obj[0]
        return None

    def pre(mod, args):
        name = names[id(mod)]
        tr.order.setdefault(name, len(tr.order))
        if isinstance(mod, _ConvNd):
            x = first_tensor(args)
            r = root.get(id(x), id(x)) if x is not None else None
            if r is not None and r in consumed:
                tr.shortcuts.append(name)
            else:
                tr.drivers.append(name)
                if r is not None:
                    consumed[r] = name
            src = producer.get(r)
            tr.conv_prev_bn[name] = src[1] if src and src[0] == 'bn' else None
            tr.conv_bn.setdefault(name, None)
        elif isinstance(mod, _BatchNorm):
            x = first_tensor(args)
            if x is not None:
                src = producer.get(id(x))
                if src and src[0] == 'conv' and tr.conv_bn.get(src[1]) is None:
                    tr.conv_bn[src[1]] = name

    def post(mod, args, out):
        x, y = first_tensor(args), first_tensor(out)
        if y is None:
            return
        keep.extend([x, y])
        if isinstance(mod, _ConvNd):
            producer[id(y)] = ('conv', names[id(mod)])
            root[id(y)] = id(y)
        elif isinstance(mod, _BatchNorm):
            producer[id(y)] = ('bn', names[id(mod)])
            root[id(y)] = id(y)
        elif x is not None and not any(True for _ in mod.parameters(recurse=False)) \
                and not list(mod.children()):
            root[id(y)] = root.get(id(x), id(x))
        else:
            root.setdefault(id(y), id(y))

    class _PassThrough(TorchFunctionMode):
        """Functional ops on one tensor that keep its shape (``torch.relu``, ``F.dropout``, ...) pass the
        tensor's identity on, like parameter-free modules do."""

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            flat = list(args) + list((kwargs or {}).values())
            tensors = [a for a in flat if torch.is_tensor(a)]
            if len(tensors) == 1 and torch.is_tensor(out) and out.shape == tensors[0].shape \
                    and id(out) not in root:
                keep.extend([tensors[0], out])
                root[id(out)] = root.get(id(tensors[0]), id(tensors[0]))
            return out

    handles = []
    for m in modules.values():
        handles.append(m.register_forward_pre_hook(pre))
        if not list(m.children()):
            handles.append(m.register_forward_hook(post))
    was_training = {m: m.training for m in modules.values()}
    model.eval()
    try:
        with torch.no_grad(), _PassThrough():
            forward()
    finally:
        for h in handles:
            h.remove()
        for m, t in was_training.items():
            m.train(t)
    return tr


def _owner(key: str, module_names) -> str:
    parts = key.split('.')
    for i in range(len(parts) - 1, -1, -1):
        cand = '.'.join(parts[:i])
        if cand in module_names:
            return cand
    return ''


def structural_drivers(model: nn.Module, forward: Callable[[], object],
                       keys: Optional[List[str]] = None) -> Dict[str, str]:
    """Map every state-dict key of ``model`` to the weight key of its driver conv.

    Args:
        model (nn.Module): the network (its ``state_dict`` keys are mapped).
        forward (callable): runs one forward pass of ``model`` on a small example input
            (called once in eval mode under ``no_grad``; running statistics are untouched).
        keys (list[str] | None): keys to map. Defaults to all ``model.state_dict()`` keys.

    Returns:
        dict[str, str]: key -> ``'<conv name>.weight'`` (a driver maps its own weight to itself).

    Raises:
        ValueError: the forward pass ran no conv.
    """
    tr = _trace(model, forward)
    if not tr.drivers:
        raise ValueError(f'structural_drivers: the forward pass of {type(model).__name__} ran no conv layer; '
                         "grafting needs convs to drive the coefficients (use driver='reference' for other nets)")
    keys = list(model.state_dict().keys()) if keys is None else list(keys)
    reg = [n for n, _ in model.named_modules()]
    reg_pos = {n: i for i, n in enumerate(reg)}
    by_time = sorted(tr.order.items(), key=lambda kv: kv[1])
    driver_set = set(tr.drivers)
    # driver in effect at each executed module
    current, at = None, {}
    for name, _ in by_time:
        if name in driver_set:
            current = name
        at[name] = current
    first = tr.drivers[0]
    # never-executed modules: nearest preceding executed module in registration order
    last_exec = None
    for n in reg:
        if n in at:
            last_exec = n
        else:
            at[n] = at[last_exec] if last_exec is not None else None
    names = set(reg_pos)
    out = {}
    for k in keys:
        d = at.get(_owner(k, names))
        out[k] = f'{d or first}.weight'
    return out


def reference_drivers(keys: List[str]) -> Dict[str, str]:
    """The official rule: key -> the most recent key containing ``conv`` (itself when it contains it).

    Raises:
        ValueError: the first key does not contain ``conv`` (the official code crashes there).
    """
    out, current = {}, None
    for k in keys:
        if 'conv' in k:
            current = k
        if current is None:
            raise ValueError(f"reference_drivers: the first state-dict key {k!r} does not contain 'conv'; "
                             "the official rule has no coefficient for it (use driver='structural')")
        out[k] = current
    return out


def conv_bn_pairs(model: nn.Module, forward: Callable[[], object]) -> Dict[str, Tuple[Optional[str],
                                                                                          Optional[str]]]:
    """conv name -> (BN reading the conv output directly, BN whose output the conv reads).

    Used by the filter-level graft (spec B.2 step 7). Either entry is None when absent.
    Parameter-free modules (activations, pooling) between a BN and the next conv are followed.
    """
    tr = _trace(model, forward)
    return {c: (tr.conv_bn.get(c), tr.conv_prev_bn.get(c)) for c in tr.drivers + tr.shortcuts}
