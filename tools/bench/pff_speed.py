"""Dense vs channel-pruned dense vs PFF-pruned wall-clock for VGG16-CIFAR and ResNet56, trained masks.

For each network the Filter Skeleton is *trained* here (PFF loss-mode L1 + per-iteration
threshold + BN liveness masking, :class:`FilterSkeletonRegularizer`, SGD momentum 0.9) for
``--iters`` iterations on digits-cifar (``data/digits-cifar``, made by
``tools/make_data.py digits-cifar``) or, when that is absent, on a generated 10-class blob
task; the trained model is cached under ``work_dirs/bench/``. α is much larger than the
paper's (1e-5 over 160 CIFAR epochs) so that a few hundred iterations sparsify the skeleton.
Training stops as soon as the kept fraction of regularised stripes (|I| > δ) falls to
``--target-stripes`` (checked every 10 iterations), so the masks are those of a trained skeleton
at a sparsity comparable to the paper's, whatever the short schedule. The first
``--warmup-iters`` iterations train without the L1 push (α = 0) so that the task is
learnt before the skeleton shrinks (a compromise for the short schedule; the official
recipe pushes from the first of 160 epochs). The trained model is then exported three ways and timed (best of interleaved runs, no grad):

- ``dense``: the unpruned network (skeleton folded into the weights);
- ``chan-pruned``: ``form='plain'``: ordinary ``nn.Conv2d`` with dead filters removed where no
  residual couples them and kernels cropped where whole border stripes died (what stock
  mmpretrain loads);
- ``pff``: stripe storage with the fastest form per layer measured once at export for
  ``--export-batch`` and stored (``form='auto'``); residual-coupled convs compute only their
  live filters; ResNet blocks with a constant residual branch use ``dead_blocks='exact_drop'``.
  On the CPU the usual winner is ``'fused'``: the compiled stripe-conv kernel of
  ``mm_ext/core/pruning/_ckernel.py`` (live stripes only, grouped by kernel position, products
  accumulated in registers, padding / stride / memory layout handled inside); the header line
  says whether it could be built (else ``'fused'`` is never chosen).

With ``--fold-bn`` (default) every BN that follows a conv is folded into it in *all three* models
(like-for-like; a residual-coupled pff conv then emits its dead filters' BN constants through its
bias). All three models and the inputs use the same memory format (``--memory-format``, default
``channels_last``: oneDNN's channels-last convs are the fastest CPU path for the dense baseline
too, 1.2-3x faster than NCHW on these narrow nets) and the same thread count (``--threads``);
the pff forms are chosen in that format, once, and stored in ``work_dirs/bench/`` (a later run
with the same masks, format, threads and export batch reads them: export and timing can run
separately; ``--no-reuse-forms`` chooses again). ``--per-layer`` prints, per conv, its FLOPs share,
its kept FLOPs, the dense and pff times and the stored form. Every export is checked against the
masked dense model. The last two lines are ``pff vgg16 speedup at batch 64: <x> (flops ratio <r>)``
and the same for resnet56 (x = dense / pff time, r = pff FLOPs / dense FLOPs; goal x >= 0.5 / r).

    python tools/bench/pff_speed.py [--batches 1 64] [--iters 300] [--threads N]
        [--memory-format channels_last|contiguous] [--per-layer]
"""
import argparse
import copy
import hashlib
import json
import os
import pickle
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mm_ext.core.pruning import (CifarResNet, CifarVGG, FilterSkeletonRegularizer, PrunedConv2d, choose_forms,
                                 count_params_flops, equip_filter_skeleton, fold_batchnorm, fold_filter_skeleton,
                                 prune_filter_skeleton, trace_channel_groups, unequip_filter_skeleton)
from mm_ext.core.pruning import _ckernel

REPO = Path(__file__).resolve().parents[2]
# per-network defaults of the mask training (override with --alpha / --iters / --warmup-iters)
DEFAULTS = {'vgg16': dict(alpha=7e-3, iters=300, warmup_iters=100),
            'resnet56': dict(alpha=3.5e-3, iters=600, warmup_iters=150)}
MEAN = torch.tensor([125.307, 122.961, 113.8575]).view(1, 3, 1, 1)
STD = torch.tensor([51.5865, 50.847, 51.255]).view(1, 3, 1, 1)


class Classifier(nn.Module):
    """body -> global average pool -> linear (the mmpretrain neck/head of the PFF configs)."""

    def __init__(self, body, num_classes=10):
        super().__init__()
        self.body = body
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(body.out_channels, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.body(x)), 1))


def build(name):
    net = Classifier(CifarVGG() if name == 'vgg16' else CifarResNet(56))
    for m in net.modules():  # official init: Kaiming fan_out convs, BN gamma 0.5, Linear N(0, 0.01)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 0.5)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
    return net


def load_data(seed):
    """(images (N, 3, 32, 32) float normalised, labels (N,)), and the data set's name."""
    root = REPO / 'data' / 'digits-cifar' / 'cifar-10-batches-py'
    if root.is_dir():
        xs, ys = [], []
        for i in range(1, 6):
            with open(root / f'data_batch_{i}', 'rb') as f:
                d = pickle.load(f, encoding='latin1')
            xs.append(np.asarray(d['data'], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys += list(d['labels'])
        x = torch.from_numpy(np.concatenate(xs)).float()
        return (x - MEAN) / STD, torch.tensor(ys), 'digits-cifar'
    g = torch.Generator().manual_seed(seed)  # generated: class k = a bright blob in cell k of a 4x3 grid
    n = 2000
    y = torch.randint(0, 10, (n, ), generator=g)
    yy, xx = torch.meshgrid(torch.arange(32.), torch.arange(32.), indexing='ij')
    cy, cx = 5 + 11 * (y // 4).float(), 4 + 8 * (y % 4).float()
    jitter = torch.randn(n, 2, generator=g) * 1.5
    blob = torch.exp(-((yy - (cy + jitter[:, 0]).view(-1, 1, 1)) ** 2 + (xx - (cx + jitter[:, 1]).view(-1, 1, 1)) ** 2)
                     / 12.0)
    x = blob.unsqueeze(1) * torch.rand(n, 3, 1, 1, generator=g) * 2 + 0.3 * torch.randn(n, 3, 32, 32, generator=g)
    return x, y, 'generated blobs'


def train_skeleton(name, args):
    """A PFF-trained model (cached): equip skeletons, train iters steps, return (model, info)."""
    args = argparse.Namespace(**{**vars(args), **{k: v for k, v in DEFAULTS[name].items()
                                                   if getattr(args, k) is None}})
    key = dict(name=name, warmup_iters=args.warmup_iters, iters=args.iters, batch=args.train_batch,
               alpha=args.alpha, delta=args.threshold, lr=args.lr, seed=args.seed, target_stripes=args.target_stripes)
    x_all, y_all, data_name = load_data(args.seed)
    key['data'] = data_name
    tag = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    cache = REPO / 'work_dirs' / 'bench' / f'pff_speed_{name}_{tag}.pth'
    torch.manual_seed(args.seed)
    net = build(name)
    equip_filter_skeleton(net, unregularized=r'downsample')
    if cache.is_file():
        net.load_state_dict(torch.load(cache, map_location='cpu', weights_only=True))
        return net.eval(), dict(key, cached=str(cache.relative_to(REPO)), tag=tag)
    groups = trace_channel_groups(net, x_all[:2])
    bn_map = {n: g.bn for n, g in groups.items() if g.removable and g.bn is not None
              and getattr(net.get_submodule(n), 'regularized', False)}
    reg = FilterSkeletonRegularizer(net, 0.0, args.threshold, bn_map=bn_map, l1_mode='loss')
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    reg.attach(opt)
    g = torch.Generator().manual_seed(args.seed)
    net.train()
    t0 = time.time()
    correct = seen = 0
    warm_acc = None
    total = args.warmup_iters + args.iters
    stopped = None
    for it in range(total):
        if it > args.warmup_iters and it % 10 == 0:
            st = reg.stats()
            if st['stripes_kept'] <= args.target_stripes * st['stripes_total']:
                stopped = it
                break
        if it == args.warmup_iters:
            reg.alpha = args.alpha
            warm_acc, correct, seen = correct / max(1, seen), 0, 0
        idx = torch.randint(0, len(y_all), (args.train_batch, ), generator=g)
        xb, yb = x_all[idx], y_all[idx]
        out = net(xb)
        loss = F.cross_entropy(out, yb) + reg.l1_penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if it >= args.warmup_iters or args.warmup_iters - 50 <= it < args.warmup_iters:
            correct += int((out.argmax(1) == yb).sum())
            seen += len(yb)
    reg.detach()
    s = reg.stats()
    info = dict(key, tag=tag, train_s=round(time.time() - t0, 1), stopped_at=stopped,
                train_acc_last50_of_warmup=None if warm_acc is None else round(warm_acc, 3),
                train_acc_l1_phase=round(correct / max(1, seen), 3),
                stripes_kept=f"{s['stripes_kept']}/{s['stripes_total']}",
                filters_kept=f"{s['filters_kept']}/{s['filters_total']}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix('.part')
    torch.save(net.state_dict(), tmp)
    os.replace(tmp, cache)
    return net.eval(), info


def _time(model, x, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        model(x)
    return (time.perf_counter() - t0) / inner


@torch.no_grad()
def bench(models, batch, repeats, memory_format=torch.contiguous_format):
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=memory_format)
    for m in models:
        m(x)
        m(x)
    times = [[] for _ in models]
    inner = max(1, 8 // batch)
    for _ in range(repeats):  # interleaved, so load changes hit every model alike
        for t, m in zip(times, models):
            t.append(_time(m, x, inner))
    return [min(t) for t in times]  # best of interleaved runs: robust to load from other processes


@torch.no_grad()
def per_layer(dense, pff, x, repeats):
    """Per conv of ``pff``: FLOPs share of the dense model, kept FLOPs, dense / pff time on its own input, form."""
    inputs, flops = {}, {}

    def pre(mod, a, key):
        inputs.setdefault(key, a[0])

    def post(mod, a, out, key):
        k = mod.num_stripes * mod.in_channels if isinstance(mod, PrunedConv2d) else mod.weight[0].numel() * \
            mod.out_channels
        flops.setdefault(key, 2 * k * out[0, 0].numel())

    hs = []
    for tag, model in (('d', dense), ('p', pff)):
        for n, m in model.named_modules():
            if isinstance(m, (nn.Conv2d, PrunedConv2d)):
                hs += [m.register_forward_pre_hook(lambda mod, a, k=(tag, n): pre(mod, a, k)),
                       m.register_forward_hook(lambda mod, a, o, k=(tag, n): post(mod, a, o, k))]
    dense(x[:1])
    pff(x[:1])
    flops1, flops = flops, {}
    inputs.clear()
    dense(x)
    pff(x)
    for h in hs:
        h.remove()
    total = sum(v for (t, _), v in flops1.items() if t == 'd')
    clock = 'thread CPU time' if torch.get_num_threads() == 1 else 'wall-clock time'
    print(f'  per conv at batch {x.shape[0]} ({clock}, best of {repeats}): share = FLOPs share of the dense model, '
          'kept = pff FLOPs / dense FLOPs of the layer')
    print(f"  {'conv':28s} {'share':>6s} {'kept':>6s} {'dense ms':>9s} {'pff ms':>8s} {'x':>6s}  form")
    sums = [0.0, 0.0]
    for (tag, n), xin in inputs.items():
        if tag != 'p' or ('d', n) not in inputs:
            continue
        dm, pm = dense.get_submodule(n), pff.get_submodule(n)
        td, tp = bench_layer(dm, inputs[('d', n)], repeats), bench_layer(pm, xin, repeats)
        sums[0] += td
        sums[1] += tp
        print(f"  {n:28s} {flops1[('d', n)] / total:6.3f} {flops1[('p', n)] / flops1[('d', n)]:6.3f} {td * 1e3:9.2f} "
              f"{tp * 1e3:8.2f} {td / tp:6.2f}  {getattr(pm, 'form', 'plain')}")
    print(f"  {'all convs':28s} {'':6s} {'':6s} {sums[0] * 1e3:9.2f} {sums[1] * 1e3:8.2f} {sums[0] / sums[1]:6.2f}")


def bench_layer(m, x, repeats):
    """Best of ``repeats`` runs; with one thread by the thread's CPU time (robust to other processes)."""
    clock = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
    m(x)
    best = float('inf')
    for _ in range(repeats):
        t0 = clock()
        m(x)
        best = min(best, clock() - t0)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--batches', type=int, nargs='+', default=[1, 64])
    ap.add_argument('--export-batch', type=int, default=64, help='batch the pff forms are chosen for')
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--models', nargs='+', default=['vgg16', 'resnet56'], choices=['vgg16', 'resnet56'])
    ap.add_argument('--warmup-iters', type=int, default=None, help='iterations without the L1 push first; '
                    'default per network (DEFAULTS)')
    ap.add_argument('--iters', type=int, default=None, help='at most this many PFF iterations (L1 push on); '
                    'default per network (DEFAULTS)')
    ap.add_argument('--target-stripes', type=float, default=0.3,
                    help='stop training once this fraction of regularised stripes is kept')
    ap.add_argument('--train-batch', type=int, default=8)
    ap.add_argument('--alpha', type=float, default=None, help='default per network (DEFAULTS)')
    ap.add_argument('--threshold', type=float, default=0.05)
    ap.add_argument('--lr', type=float, default=0.05)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--fold-bn', action=argparse.BooleanOptionalAction, default=True,
                    help='fold BN into the preceding conv in all three models')
    ap.add_argument('--memory-format', default='channels_last', choices=['channels_last', 'contiguous'],
                    help='memory format of all three models and their inputs')
    ap.add_argument('--per-layer', action='store_true', help='per-conv FLOPs share, dense / pff time and form')
    ap.add_argument('--reuse-forms', action=argparse.BooleanOptionalAction, default=True,
                    help='reuse the per-layer forms stored by an earlier export of the same masks, format, thread '
                         'count and export batch (work_dirs/bench/*_forms_*.json) instead of timing them again')
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    fmt = torch.channels_last if args.memory_format == 'channels_last' else torch.contiguous_format
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads (all models), BN folded: {args.fold_bn}, '
          f'memory format: {args.memory_format} (all models), fused stripe kernel: '
          f"{'built' if _ckernel.load() is not None else 'unavailable'}")
    results = {}
    rows = []
    for name in args.models:
        trained, info = train_skeleton(name, args)
        print(f'{name} masks: ' + json.dumps(info))
        x1 = torch.randn(1, 3, 32, 32)
        xe = torch.randn(args.export_batch, 3, 32, 32)
        masked = copy.deepcopy(trained)
        fold_filter_skeleton(masked, args.threshold)
        dense = copy.deepcopy(trained)
        unequip_filter_skeleton(dense, fold=True)
        chan = copy.deepcopy(trained)
        prune_filter_skeleton(chan, xe[:2], args.threshold, form='plain')
        pff = copy.deepcopy(trained)
        rep = prune_filter_skeleton(pff, xe[:2], args.threshold, form='dense',
                                    dead_blocks='exact_drop' if name == 'resnet56' else 'keep')
        dropped = rep.pop('__dropped_blocks__', {}).get('blocks', [])
        if args.fold_bn:
            for m in (dense, chan, pff):
                fold_batchnorm(m.eval())
        for m in (dense, chan, pff):
            m.to(memory_format=fmt)
        xe = xe.contiguous(memory_format=fmt)
        forms_file = REPO / 'work_dirs' / 'bench' / (f"pff_speed_{name}_{info['tag']}_forms_{args.memory_format}_"
                                                     f"{torch.get_num_threads()}t_b{args.export_batch}.json")
        layers = {n: m for n, m in pff.named_modules() if isinstance(m, PrunedConv2d)}
        stored = json.loads(forms_file.read_text()) if args.reuse_forms and forms_file.is_file() else None
        if stored is not None and set(stored) == set(layers):
            for n, f in stored.items():  # the forms chosen at an earlier export of these very masks
                layers[n].form = f
            print(f'{name}: forms chosen at export, read from {forms_file.relative_to(REPO)}')
        else:
            chosen = choose_forms(pff, xe, repeats=args.repeats)  # once, at export, for the export batch; stored in each layer
            tmp = forms_file.with_suffix('.part')
            tmp.write_text(json.dumps(chosen, indent=1, sort_keys=True))
            os.replace(tmp, forms_file)
        forms = {}
        for m in pff.modules():
            if isinstance(m, PrunedConv2d):
                forms[m.form] = forms.get(m.form, 0) + 1
        with torch.no_grad():
            ref = masked(xe[:8])
            errs = [float((m(xe[:8]) - ref).abs().max()) for m in (chan, pff)]
        assert max(errs) < 1e-3, f'{name}: export differs from the masked dense model by {errs}'
        p0, f0 = count_params_flops(dense, x1, params='deploy')
        pc, fc = count_params_flops(chan, x1, params='deploy')
        pp, fp = count_params_flops(pff, x1, params='deploy')
        po, _ = count_params_flops(pff, x1, params='official')
        po0, _ = count_params_flops(trained, x1, params='official')
        print(f'{name}: params deploy {p0} -> chan-pruned {pc} -> pff {pp} ({pp / p0:.3f}); official count '
              f'(skeletons included) {po0} -> {po} ({po / po0:.3f}); FLOPs {f0} -> chan-pruned {fc} ({fc / f0:.3f})'
              f' -> pff {fp} ({fp / f0:.3f}); dropped blocks {len(dropped)}; forms {forms}; max |diff| vs masked '
              f'dense {max(errs):.1e}')
        if args.per_layer:
            per_layer(dense, pff, xe, args.repeats)
        for bsz in args.batches:
            td, tc, tp = bench([dense, chan, pff], bsz, args.repeats, fmt)
            rows.append(f'{name:9s} {bsz:5d} {td * 1e3:9.2f} {tc * 1e3:11.2f} {tp * 1e3:9.2f} {td / tc:10.2f} '
                        f'{td / tp:8.2f} {fp / f0:8.3f} {0.5 / (fp / f0):10.2f}')
            if bsz == 64:
                results[name] = (td / tp, fp / f0)
    print(f"{'model':9s} {'batch':>5s} {'dense ms':>9s} {'chan-pr ms':>11s} {'pff ms':>9s} {'chan x':>10s} "
          f"{'pff x':>8s} {'flops r':>8s} {'goal 0.5/r':>10s}")
    for r in rows:
        print(r)
    for name in ('vgg16', 'resnet56'):
        if name in results:
            x, r = results[name]
            print(f'pff {name} speedup at batch 64: {x:.2f} (flops ratio {r:.3f})')


if __name__ == '__main__':
    main()
