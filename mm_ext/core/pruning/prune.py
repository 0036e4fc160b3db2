"""Physical pruning of a Filter-Skeleton model (PFF, arXiv 2009.14410, Sec. 3.3; spec A.7, E.1).

1. fold ``I`` into ``W`` and zero stripes with ``|I| ≤ δ`` (the exact "masked dense" model);
2. remove filters whose stripes are all dead, with their BN channels and the input
   channels / features they fed, wherever the channel is removable (no residual
   coupling, see :mod:`.channel_graph`) and the dead channel is exactly zero after
   its BN/activation (so outputs are unchanged);
3. turn every pruned conv into a :class:`PrunedConv2d` (stripe storage, fastest form).
"""
import json
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np

import torch
import torch.nn as nn

from .channel_graph import ChannelGroup, _LeafTracer, trace_channel_groups
from .filter_skeleton_conv import FilterSkeletonConv2d, stripe_ineligibility
from .pruned_conv import PrunedConv2d, choose_forms
from .stripe_conv import StripeConv2d
from .surgery import _set_child

__all__ = ['stripe_masks', 'fold_filter_skeleton', 'prune_filter_skeleton', 'reshape_to_state_dict',
           'count_params_flops', 'plain_conv', 'DroppedBlock', 'drop_dead_blocks', 'vanishing_dead_channels',
           'pruned_arch', 'build_pruned_arch', 'fold_batchnorm', 'encode_arch', 'decode_arch']


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


_BN = nn.modules.batchnorm._BatchNorm


def _bn_eval(bn: nn.Module, v: torch.Tensor) -> torch.Tensor:
    """BN in eval mode applied to a per-channel constant v (N,)."""
    was = bn.training
    bn.eval()
    try:
        return bn(v.view(1, -1, 1, 1)).flatten()
    finally:
        bn.train(was)


@torch.no_grad()
def vanishing_dead_channels(model: nn.Module, group: ChannelGroup, conv: nn.Conv2d, dead: torch.Tensor) -> torch.Tensor:
    """Which dead filters (``dead`` (N,) bool) give an exactly zero channel at every consumer.

    A dead filter outputs its bias (0 without one); the BN right after the conv maps that to a
    per-channel constant (0 once PFF masked its γ, β). The channel vanishes when that constant
    is 0 and every later op on the way maps 0 to 0 (ReLU, pooling, ...; not a sigmoid, not a
    second BN), checked op by op, so removal stays exact (spec A.7).
    """
    if group.nonzero_ops:
        return torch.zeros_like(dead)
    v = conv.bias.detach().clone() if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
    if group.bn is not None:
        v = _bn_eval(model.get_submodule(group.bn), v)
    ok = dead & (v == 0)
    zero = conv.weight.new_zeros(1, conv.out_channels, 1, 1)
    for name in group.chain:
        if name == group.bn:
            continue
        m = model.get_submodule(name)
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout,
                          nn.Dropout2d, nn.Identity, nn.Flatten)):
            continue  # zero maps stay zero
        was = m.training
        m.eval()
        try:
            out = m(zero.clone())
        finally:
            m.train(was)
        ok &= out.reshape(1, conv.out_channels, -1)[0].eq(0).all(dim=1)
    return ok


def _slice_param(module: nn.Module, pname: str, keep: torch.Tensor, dim: int) -> None:
    p = getattr(module, pname, None)
    if p is None:
        return
    new = p.detach().index_select(dim, keep.nonzero().flatten()).clone()
    if isinstance(p, nn.Parameter):
        setattr(module, pname, nn.Parameter(new, requires_grad=p.requires_grad))
    else:
        setattr(module, pname, new)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@torch.no_grad()
def plain_conv(conv: nn.Conv2d, mask: torch.Tensor) -> nn.Conv2d:
    """An ordinary ``nn.Conv2d`` equal to ``conv`` with the stripes where ``mask`` (N, KH, KW) is False
    zeroed and the kernel cropped, rows and columns separately, to the centred box holding every
    live stripe (border rows/columns that died in every filter are removed, the padding reduced
    by as much, so the output grid is unchanged). Works for grouped and depthwise convs.
    """
    w = conv.weight.detach() * mask.unsqueeze(1).to(conv.weight.dtype)
    kh, kw = conv.kernel_size
    ph, pw = (conv.padding if not isinstance(conv.padding, str) else (None, None))
    crop = [0, 0]
    if ph is not None and conv.padding_mode == 'zeros':
        rows, cols = mask.any(0).any(1), mask.any(0).any(0)
        for axis, (alive, k, p) in enumerate(((rows, kh, ph), (cols, kw, pw))):
            c = 0
            dil = conv.dilation[axis]
            # drop the outermost index on both sides while both are dead and the padding allows it
            while k - 2 * c > 1 and not alive[c] and not alive[k - 1 - c] and p - (c + 1) * dil >= 0:
                c += 1
            crop[axis] = c
    ch, cw = crop
    new = nn.Conv2d(conv.in_channels, conv.out_channels, (kh - 2 * ch, kw - 2 * cw), conv.stride,
                    conv.padding if isinstance(conv.padding, str) else
                    (ph - ch * conv.dilation[0], pw - cw * conv.dilation[1]), conv.dilation, conv.groups,
                    conv.bias is not None, conv.padding_mode, device=w.device, dtype=w.dtype)
    new.weight.copy_(w[:, :, ch:kh - ch, cw:kw - cw])
    new.weight.requires_grad_(conv.weight.requires_grad)
    if conv.bias is not None:
        new.bias.copy_(conv.bias)
    new.train(conv.training)
    return new


class DroppedBlock(nn.Module):
    """A residual block whose residual branch was found constant, replaced at export (spec decision 5).

    ``exact_drop``: y = act(shortcut(x) + const), const (N,) = the branch's constant output
    (the last BN of the dead branch), which is exactly what the block computed.
    ``shortcut`` (official 2021 behaviour, inexact): y = shortcut(x).

    Args:
        shortcut (nn.Module, optional): the block's projection (None = identity).
        num_channels (int): N.
        exact (bool): add ``const`` and apply ``act``. Defaults to True.
    """

    def __init__(self, shortcut: Optional[nn.Module], num_channels: int, exact: bool = True):
        super().__init__()
        self.shortcut = shortcut
        self.exact = exact
        self.register_buffer('const', torch.zeros(num_channels))
        self.act = nn.ReLU() if exact else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.shortcut is None else self.shortcut(x)
        if self.exact:
            y = self.act(y + self.const.to(y.dtype).view(1, -1, 1, 1))
        return y

    def extra_repr(self) -> str:
        return f'channels={self.const.numel()}, exact={self.exact}'


def _block_parts(block: nn.Module):
    """[(conv, norm), ...] of a residual block (CIFAR basic block, mmpretrain BasicBlock / Bottleneck)
    and its shortcut, or None when ``block`` is not such a block."""
    if not hasattr(block, 'conv1') or not hasattr(block, 'conv2') or not hasattr(block, 'downsample') \
            or not isinstance(getattr(block, 'relu', None), nn.ReLU):
        return None
    parts = []
    for k in (1, 2, 3):
        conv = getattr(block, f'conv{k}', None)
        if conv is None:
            break
        norm = getattr(block, f'norm{k}', None) or getattr(block, f'bn{k}', None)
        if not isinstance(conv, nn.Conv2d) or not isinstance(norm, _BN):
            return None
        parts.append((conv, norm))
    return parts


@torch.no_grad()
def _branch_constant(parts) -> Optional[torch.Tensor]:
    """The residual branch's output (N,) when it is the same constant for every input, else None.

    A conv whose stripes are all zero, or whose input is exactly zero, outputs its bias (or 0);
    its BN maps that to a constant; a ReLU'd all-zero constant makes the next conv's input zero.
    A non-zero constant input to a padded conv is not constant at the borders: unknown.
    """
    v = None  # per-channel constant at the current point, None = input-dependent
    last = len(parts) - 1
    for k, (conv, norm) in enumerate(parts):
        input_zero = v is not None and bool((v == 0).all())
        if input_zero or not bool(conv.weight.ne(0).any()):
            v = conv.bias.detach().clone() if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
            v = _bn_eval(norm, v)
            if k < last:
                v = v.clamp(min=0)  # the block's ReLU between convs
        else:
            v = None
    return v


@torch.no_grad()
def drop_dead_blocks(model: nn.Module, mode: str = 'exact_drop') -> List[str]:
    """Replace residual blocks whose residual branch is constant (after folding) by :class:`DroppedBlock`.

    Args:
        model (nn.Module): a folded model (skeletons baked in, dead stripes zero).
        mode (str): ``'exact_drop'`` (act(shortcut(x) + constant): exact) or ``'shortcut'``
            (shortcut(x) only, the official post-2021 behaviour: inexact).

    Returns:
        list[str]: names of the replaced blocks.
    """
    if mode not in ('exact_drop', 'shortcut'):
        raise ValueError(f"drop_dead_blocks: mode must be 'exact_drop' or 'shortcut', got {mode!r}")
    todo = []
    for name, m in model.named_modules():
        parts = _block_parts(m)
        if not parts or any(name.startswith(t + '.') for t, _, _ in todo):
            continue
        c = _branch_constant(parts)
        if c is not None:
            todo.append((name, m, c))
    for name, m, c in todo:
        new = DroppedBlock(m.downsample, c.numel(), exact=(mode == 'exact_drop'))
        new.const.copy_(c)
        new.train(m.training)
        _set_child(model, name, new)
    return [n for n, _, _ in todo]


@torch.no_grad()
def prune_filter_skeleton(model: nn.Module, example_input: torch.Tensor, threshold: float = 0.01,
                          form: str = 'dense', root: Optional[nn.Module] = None,
                          groups: Optional[Dict[str, ChannelGroup]] = None,
                          dead_blocks: str = 'keep') -> Dict[str, dict]:
    """Physically prune a trained Filter-Skeleton model in place.

    Args:
        model (nn.Module): model holding :class:`FilterSkeletonConv2d` modules; modified in place.
        example_input (Tensor): (B, C, H, W) batch for tracing ``root`` (and timing, ``form='auto'``).
        threshold (float): δ. Defaults to 0.01.
        form (str): ``'plain'``: every conv becomes an ordinary ``nn.Conv2d`` (channels removed,
            kernel cropped where border stripes died; loads without mm_ext);
            ``'dense'`` / ``'flat'`` / ``'gather'`` / ``'nchw'``: stripe-form-eligible convs become
            :class:`PrunedConv2d` (stripe storage) running that form; ``'auto'``: as stripe storage,
            the fastest form per layer measured once here (:func:`choose_forms`) and stored.
            Defaults to 'dense'.
        root (nn.Module, optional): fx-traceable module (image -> tensor) whose submodules
            are ``model``'s (names relative to ``root`` must equal names in ``model``).
            Defaults to ``model``.
        groups (dict[str, ChannelGroup], optional): precomputed channel coupling; skips tracing.
        dead_blocks (str): residual blocks with a constant residual branch: ``'keep'`` (paper-era:
            keep filter 0 / the zero stripes; exact, shapes stay non-empty), ``'exact_drop'``
            (replaced by act(shortcut(x) + constant), exact) or ``'shortcut'`` (replaced by the
            shortcut, official 2021, inexact). Defaults to 'keep' (spec decision 5).

    Returns:
        dict[str, dict]: per pruned conv: ``filters`` (kept, total), ``stripes`` (kept, total),
        ``in_channels`` (kept, total), ``removable`` (bool), ``reason`` (str), ``form`` (str);
        the key ``'__dropped_blocks__'`` lists replaced blocks when any.

    Note:
        When tracing fails no channel is removed (a warning is issued); stripes are
        still pruned, so the result stays exact.
    """
    if form not in ('plain', 'auto') + PrunedConv2d.FORMS:
        raise ValueError(f"prune_filter_skeleton: form must be 'plain', 'auto' or one of {PrunedConv2d.FORMS}, "
                         f'got {form!r}')
    if dead_blocks not in ('keep', 'exact_drop', 'shortcut'):
        raise ValueError(f"prune_filter_skeleton: dead_blocks must be 'keep', 'exact_drop' or 'shortcut', "
                         f'got {dead_blocks!r}')
    root = model if root is None else root
    masks = fold_filter_skeleton(model, threshold)
    dropped: List[str] = []
    if dead_blocks != 'keep':
        dropped = drop_dead_blocks(model, dead_blocks)
        names = set(n for n, _ in model.named_modules())
        masks = {n: m for n, m in masks.items() if n in names}
        groups = None if dropped else groups
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
        dead = ~mask.flatten(1).any(dim=1)
        keep = ~vanishing_dead_channels(model, g, conv, dead)
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
    report: Dict[str, dict] = {}
    for name, mask in masks.items():
        conv = model.get_submodule(name)
        if form != 'plain' and stripe_ineligibility(conv) is None:
            pc = PrunedConv2d.from_dense(conv.weight, mask, conv.bias, conv.stride[0], conv.padding[0],
                                         form='dense' if form == 'auto' else form)
            pc.stripe_weight.requires_grad_(conv.weight.requires_grad)
        else:
            pc = plain_conv(conv, mask)
        pc.train(conv.training)
        _set_child(model, name, pc)
        g = groups.get(name)
        n_total = int(keep_out[name].numel()) if name in keep_out else conv.out_channels
        c_total = int(keep_in[name].numel()) if name in keep_in else conv.in_channels
        report[name] = dict(filters=(conv.out_channels, n_total), stripes=(int(mask.sum()), n_total * mask[0].numel()),
                            in_channels=(conv.in_channels, c_total), removable=bool(g and g.removable),
                            reason='' if g is None else g.reason,
                            form=getattr(pc, 'form', 'plain'))
    if form == 'auto':
        for name, f in choose_forms(root, example_input).items():
            if name in report:
                report[name]['form'] = f
    if dropped:
        report['__dropped_blocks__'] = dict(blocks=dropped, mode=dead_blocks)
    return report


ARCH_VERSION = 1


def pruned_arch(model: nn.Module) -> dict:
    """The architecture of a pruned model, enough to rebuild it from the unpruned one.

    Records every conv (ordinary or :class:`PrunedConv2d`, with its stripe mask and form),
    BatchNorm, Linear and :class:`DroppedBlock` by module name; stored next to the weights
    (``tools/pff_prune.py`` writes it into the checkpoint and as ``*_arch.pth``), so no
    whole-object pickling is needed. Plain Python values and bool tensors only.

    Returns:
        dict: ``{'version': 1, 'modules': {name: spec}}``.
    """
    specs = {}
    for name, m in model.named_modules():
        if isinstance(m, PrunedConv2d):
            specs[name] = dict(kind='pruned_conv', in_channels=m.in_channels, stripe_mask=m.stripe_mask.cpu().clone(),
                               stride=m.stride, padding=m.padding, bias=m.bias is not None, form=m.form)
        elif isinstance(m, nn.Conv2d):
            specs[name] = dict(kind='conv', in_channels=m.in_channels, out_channels=m.out_channels,
                               kernel_size=tuple(m.kernel_size), stride=tuple(m.stride),
                               padding=m.padding if isinstance(m.padding, str) else tuple(m.padding),
                               dilation=tuple(m.dilation), groups=m.groups, bias=m.bias is not None,
                               padding_mode=m.padding_mode)
        elif isinstance(m, _BN):
            specs[name] = dict(kind='bn', num_features=m.num_features)
        elif isinstance(m, nn.Linear):
            specs[name] = dict(kind='linear', in_features=m.in_features, out_features=m.out_features,
                               bias=m.bias is not None)
        elif isinstance(m, DroppedBlock):
            specs[name] = dict(kind='dropped_block', num_channels=m.const.numel(), exact=m.exact,
                               shortcut=m.shortcut is not None)
        elif type(m) is nn.Identity and name:
            specs[name] = dict(kind='identity')  # e.g. a BN folded into its conv (fold_batchnorm)
    return dict(version=ARCH_VERSION, modules=specs)


def encode_arch(arch: Optional[dict]) -> torch.Tensor:
    """An arch record (:func:`pruned_arch`) as a deterministic uint8 tensor (JSON; masks bit-packed);
    empty for None. Being a tensor, it can live in a state dict that DDP broadcasts."""
    if arch is None:
        return torch.zeros(0, dtype=torch.uint8)
    mods = {}
    for name, spec in arch['modules'].items():
        spec = dict(spec)
        if 'stripe_mask' in spec:
            m = spec['stripe_mask'].to(torch.bool).cpu()
            spec['stripe_mask'] = dict(shape=list(m.shape), bits=np.packbits(m.flatten().numpy()).tobytes().hex())
        mods[name] = spec
    text = json.dumps(dict(version=arch['version'], modules=mods), sort_keys=True, separators=(',', ':'))
    return torch.tensor(list(text.encode()), dtype=torch.uint8)


def decode_arch(record: torch.Tensor) -> Optional[dict]:
    """Inverse of :func:`encode_arch`."""
    if record.numel() == 0:
        return None
    obj = json.loads(bytes(record.cpu().tolist()).decode())
    for spec in obj['modules'].values():
        for k in ('kernel_size', 'stride', 'padding', 'dilation'):
            if isinstance(spec.get(k), list):
                spec[k] = tuple(spec[k])
        if isinstance(spec.get('stripe_mask'), dict):
            sm = spec['stripe_mask']
            n = int(np.prod(sm['shape']))
            bits = np.unpackbits(np.frombuffer(bytes.fromhex(sm['bits']), dtype=np.uint8))[:n]
            spec['stripe_mask'] = torch.from_numpy(bits.astype(bool)).view(*sm['shape'])
    return obj


def _param_like(old: Optional[torch.Tensor], shape, requires_grad=True):
    return nn.Parameter(torch.zeros(shape, dtype=old.dtype, device=old.device), requires_grad=requires_grad)


@torch.no_grad()
def build_pruned_arch(model: nn.Module, arch: dict, where: str = 'arch') -> int:
    """Restructure an unpruned ``model`` in place to the pruned architecture ``arch`` (from
    :func:`pruned_arch`); values are zeros until a state dict is loaded. Call it at model
    construction, before an optimiser or DDP wrapper sees the parameters.

    Args:
        model (nn.Module): the model as built from the training config (skeleton convs allowed).
        arch (dict): output of :func:`pruned_arch`.
        where (str): name of the arch source, for error messages. Defaults to 'arch'.

    Returns:
        int: number of modules changed.
    """
    if not isinstance(arch, dict) or arch.get('version') != ARCH_VERSION or 'modules' not in arch:
        raise ValueError(f'{where}: not a PFF pruned-architecture record (version {ARCH_VERSION}); '
                         'write it with tools/pff_prune.py')
    specs = arch['modules']
    changed = 0
    # parents first: a dropped block replaces a subtree
    for name in sorted(specs, key=lambda n: n.count('.')):
        spec = specs[name]
        try:
            m = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f'{where}: module {name!r} does not exist in the model built from the config; '
                             'was the arch written for another config?') from None
        kind = spec['kind']
        ref = next(iter(m.parameters()), None) if kind not in ('dropped_block', 'identity') else None
        dd = dict(dtype=ref.dtype, device=ref.device) if ref is not None else {}
        if kind == 'dropped_block':
            if isinstance(m, DroppedBlock):
                continue
            shortcut = getattr(m, 'downsample', None) if spec['shortcut'] else None
            new = DroppedBlock(shortcut, spec['num_channels'], exact=spec['exact'])
        elif kind == 'identity':
            if type(m) is nn.Identity:
                continue
            new = nn.Identity()
        elif kind == 'pruned_conv':
            new = PrunedConv2d(spec['in_channels'], spec['stripe_mask'], spec['stride'], spec['padding'],
                               bias=spec['bias'], form=spec['form'], **dd)
        elif kind == 'conv':
            if type(m) is nn.Conv2d and m.weight.shape == (spec['out_channels'], spec['in_channels'] // spec['groups'],
                                                           *spec['kernel_size']) \
                    and tuple(m.padding) == tuple(spec['padding']):
                continue
            new = nn.Conv2d(spec['in_channels'], spec['out_channels'], spec['kernel_size'], spec['stride'],
                            spec['padding'], spec['dilation'], spec['groups'], spec['bias'], spec['padding_mode'], **dd)
        elif kind == 'bn':
            if m.num_features == spec['num_features']:
                continue
            n = spec['num_features']
            if m.weight is not None:
                m.weight = _param_like(m.weight, (n, ), m.weight.requires_grad)
                m.bias = _param_like(m.bias, (n, ), m.bias.requires_grad)
            if m.running_mean is not None:
                m.running_mean = m.running_mean.new_zeros(n)
                m.running_var = m.running_var.new_ones(n)
            m.num_features = n
            changed += 1
            continue
        elif kind == 'linear':
            if (m.in_features, m.out_features) == (spec['in_features'], spec['out_features']):
                continue
            m.weight = _param_like(m.weight, (spec['out_features'], spec['in_features']), m.weight.requires_grad)
            m.in_features, m.out_features = spec['in_features'], spec['out_features']
            changed += 1
            continue
        else:
            raise ValueError(f'{where}: unknown module kind {kind!r} for {name!r}')
        new.train(m.training)
        _set_child(model, name, new)
        changed += 1
    return changed


def count_params(model: nn.Module) -> Dict[str, int]:
    """Parameter counts of a (pruned) skeleton model.

    Returns:
        dict: ``official``: every parameter including the Filter Skeleton, and for a stripe-pruned
        conv its leftover skeleton (one entry per position of each kept filter, N'·K·K), as the
        official counter counts them; ``deploy``: the weights a deployed model holds (skeletons
        folded away).
    """
    deploy = sum(p.numel() for n, p in model.named_parameters() if not n.endswith('filter_skeleton'))
    official = sum(p.numel() for p in model.parameters())
    official += sum(m.stripe_mask.numel() for m in model.modules() if isinstance(m, StripeConv2d))
    return dict(official=official, deploy=deploy)


@torch.no_grad()
def count_params_flops(model: nn.Module, example_input: torch.Tensor, forward=None,
                       params: str = 'official') -> Tuple[int, int]:
    """Parameters and FLOPs (2 × multiply-adds of convs and linears, official counter's convention).

    Pruned convs count only live stripes: 2 · N' · C · H_out · W_out (spec A.8); grouped convs
    count their C/groups inputs per filter.

    Args:
        model (nn.Module): model whose parameters are counted.
        example_input (Tensor): (1, C, H, W); FLOPs are per image.
        forward (callable, optional): ``forward(x)`` to run instead of ``model(x)``.
        params (str): ``'official'`` (skeletons included, see :func:`count_params`) or ``'deploy'``.
            Defaults to 'official'.

    Returns:
        tuple[int, int]: (params, FLOPs per image).
    """
    if params not in ('official', 'deploy'):
        raise ValueError(f"count_params_flops: params must be 'official' or 'deploy', got {params!r}")
    n_params = count_params(model)[params]
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
    return n_params, flops[0]


@torch.no_grad()
def fold_batchnorm(model: nn.Module, root: Optional[nn.Module] = None) -> List[str]:
    """Fold every BatchNorm that is the only consumer of a conv into that conv (inference only).

    y = γ·(conv(x) + b − μ)/√(σ² + ε) + β becomes one conv with weight W·s and bias (b − μ)·s + β,
    s = γ/√(σ² + ε), per output filter; the BN becomes ``nn.Identity``. Works for ``nn.Conv2d`` and
    :class:`StripeConv2d` / :class:`PrunedConv2d` (each stored stripe row is scaled by its filter's s;
    a residual-coupled conv that computes only live filters then outputs the dead filters' BN
    constants through its bias). Uses running statistics: apply to an eval-mode model.

    Args:
        model (nn.Module): modified in place.
        root (nn.Module, optional): fx-traceable image -> tensor module sharing ``model``'s
            submodules (names relative to it equal names in ``model``). Defaults to ``model``.

    Returns:
        list[str]: names of the folded BNs.
    """
    root = model if root is None else root
    graph = _LeafTracer().trace(root)
    modules = dict(root.named_modules())
    folded = []
    for node in graph.nodes:
        if node.op != 'call_module' or not isinstance(modules.get(node.target), _BN):
            continue
        src = node.args[0] if node.args else None
        if getattr(src, 'op', None) != 'call_module' or len(src.users) != 1:
            continue
        conv = modules[src.target]
        bn = modules[node.target]
        if not isinstance(conv, (nn.Conv2d, StripeConv2d)) or bn.running_mean is None or \
                sum(1 for n in graph.nodes if n.op == 'call_module' and n.target == node.target) != 1:
            continue
        s = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.weight is not None else \
            1 / torch.sqrt(bn.running_var + bn.eps)
        beta = bn.bias if bn.bias is not None else torch.zeros_like(s)
        b = conv.bias if conv.bias is not None else torch.zeros_like(s)
        new_bias = (b - bn.running_mean) * s + beta
        if isinstance(conv, StripeConv2d):
            filt = conv.stripe_mask.permute(1, 2, 0).nonzero()[:, 2]
            conv.stripe_weight.mul_(s[filt].unsqueeze(1).to(conv.stripe_weight.dtype))
        else:
            conv.weight.mul_(s.view(-1, 1, 1, 1).to(conv.weight.dtype))
        conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype if isinstance(conv, nn.Conv2d)
                                             else conv.stripe_weight.dtype).clone())
        _set_child(model, node.target, nn.Identity())
        folded.append(node.target)
    return folded
