#!/usr/bin/env python
"""Export a PFF-trained mmpretrain model as physically pruned, deployable models.

    python tools/pff_prune.py CONFIG CHECKPOINT [--out PRUNED.pth] [--threshold 0.01]
        [--form auto|dense|full|flat|gather|nchw|fused] [--dead-blocks keep|exact_drop|shortcut] [--no-plain]

Builds the model of CONFIG, loads CHECKPOINT, evaluates it, prunes it (fold the Filter
Skeleton, drop stripes with |I| <= threshold, remove dead filters and the inputs they fed
where no residual couples them and the dead channel is exactly zero downstream), checks
the logits against the masked dense model, evaluates again, measures wall-clock and writes
(each file to a temp name, then renamed):

- ``OUT`` (stripe storage): ``PrunedConv2d`` layers whose form was chosen once here and is
  stored; it holds the pruned architecture and loads into the CONFIG model (tools/test.py);
- ``<out>_arch.pth`` and ``<out>_finetune.py``: the architecture record and a config that
  builds the pruned model at construction (``model.pruned_arch``), so ``tools/train.py``
  fine-tunes it (single process or DDP) with the optimiser on the pruned parameters;
- ``<out>_plain.py``, ``<out>_plain.pth``, ``<out>_plain_backbone.pt`` (unless ``--no-plain``):
  a plain torch model (ordinary ``nn.Conv2d``, channels removed, kernels cropped where whole
  border stripes died) and a stock mmpretrain config that loads it without mm_ext;
- a per-layer stripe-survival heatmap PNG.
The last line is ``PFF_SUMMARY {json}``.
"""
import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import mm_ext  # noqa: F401  compat fixes (checkpoint loading on torch >= 2.6)


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Prune a PFF-trained model (stripes + dead filters)')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--out', help='pruned checkpoint path (default: <checkpoint stem>_pruned.pth next to it)')
    p.add_argument('--heatmap', help='stripe-survival PNG (default: <out stem>_stripes.png)')
    p.add_argument('--threshold', type=float, help='delta; default: the PFFHook threshold of the config, else 0.01')
    from mm_ext.core.pruning import PrunedConv2d
    p.add_argument('--form', default='auto', choices=['auto', *PrunedConv2d.FORMS],
                   help="stripe-storage form; 'auto' times every form per layer once, for the largest speed batch "
                        "('fused': the compiled CPU kernel, see mm_ext/core/pruning/_ckernel.py)")
    p.add_argument('--dead-blocks', default='keep', choices=['keep', 'exact_drop', 'shortcut'],
                   help='residual blocks with a constant branch (spec decision 5); shortcut is inexact')
    p.add_argument('--fold-bn', action='store_true',
                   help='fold BNs into their convs in the stripe-storage export (inference only)')
    p.add_argument('--no-plain', action='store_true', help='skip the plain torch / stock mmpretrain export')
    p.add_argument('--speed-batches', type=int, nargs='*', default=[1, 64])
    p.add_argument('--max-eval-batches', type=int, default=0, help='0 = the whole test set')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def _threshold(cfg, override):
    if override is not None:
        return override
    for h in cfg.get('custom_hooks', []) or []:
        if h.get('type') in ('PFFHook', 'mmpretrain.PFFHook'):
            return float(h.get('threshold', 0.01))
    return 0.01


def _input_shape(cfg):
    for h in cfg.get('custom_hooks', []) or []:
        if h.get('type') in ('PFFHook', 'mmpretrain.PFFHook') and 'input_shape' in h:
            return tuple(h['input_shape'])
    return (3, 32, 32)


def evaluate(model, loader, evaluator, max_batches=0):
    import torch
    model.eval()
    with torch.no_grad():
        for i, data in enumerate(loader):
            if max_batches and i >= max_batches:
                break
            evaluator.process(data_samples=model.test_step(data), data_batch=data)
    n = len(loader.dataset) if not max_batches else min(len(loader.dataset), max_batches * loader.batch_size)
    return evaluator.evaluate(n)


def time_forward(fn, x, repeats=5):
    import torch
    with torch.no_grad():
        fn(x)
        fn(x)
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(x)
            ts.append(time.perf_counter() - t0)
    return min(ts)  # best of the runs: robust to load from other processes


def save_heatmap(masks, path):
    """One K×K panel per regularised conv: fraction of filters whose stripe at (i, j) survives."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(masks)
    cols = min(7, max(1, len(names)))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.3 * rows), squeeze=False)
    im = None
    for ax, name in zip(axes.flat, names):
        m = masks[name].float()
        im = ax.imshow(m.mean(0).numpy(), vmin=0, vmax=1, cmap='viridis')
        alive = int(m.flatten(1).any(1).sum())
        ax.set_title(f'{name.replace("backbone.", "")}\nfilters {alive}/{m.shape[0]} '
                     f'stripes {int(m.sum())}/{m.numel()}', fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
        for (i, j), v in __import__('numpy').ndenumerate(m.mean(0).numpy()):
            ax.text(j, i, f'{v:.2f}', ha='center', va='center', fontsize=5, color='w' if v < 0.6 else 'k')
    for ax in list(axes.flat)[len(names):]:
        ax.axis('off')
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label='surviving fraction of filters')
    fig.suptitle('PFF: stripe survival per kernel position (|I| > threshold)', fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.png', dir=path.parent)
    os.close(fd)
    fig.savefig(tmp, dpi=130)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(argv)
    import torch
    from mmengine.config import Config
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner, load_checkpoint
    from mmengine.utils import import_modules_from_strings

    from mm_ext.core.pruning import PrunedConv2d, choose_forms, count_params, count_params_flops, fold_batchnorm, \
        fold_filter_skeleton, pruned_arch, stripe_masks

    if not os.path.isfile(args.config):
        raise SystemExit(f'pff_prune.py: config {args.config!r} not found')
    if not os.path.isfile(args.checkpoint):
        raise SystemExit(f'pff_prune.py: checkpoint {args.checkpoint!r} not found')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    from mmpretrain.registry import MODELS

    from mm_ext.mmpretrain.pff.export import write_plain_export

    delta = _threshold(cfg, args.threshold)
    out = Path(args.out) if args.out else Path(args.checkpoint).with_name(Path(args.checkpoint).stem + '_pruned.pth')
    heatmap = Path(args.heatmap) if args.heatmap else out.with_name(out.stem + '_stripes.png')
    stem = out.with_suffix('')

    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:  # the Runner merges the top-level preprocessor the same way
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    if not hasattr(model, 'tensor_path'):
        raise SystemExit(f'pff_prune.py: model type {type(model).__name__} is not a PFFImageClassifier; '
                         "set model.type='PFFImageClassifier' in the config")
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True, logger='silent')
    if model.pff_arch is not None:
        raise SystemExit(f'pff_prune.py: {args.checkpoint} is already pruned')
    model.eval()
    loader = Runner.build_dataloader(cfg.test_dataloader, seed=0)
    evaluator = Evaluator(cfg.test_evaluator)
    if hasattr(loader.dataset, 'metainfo'):
        evaluator.dataset_meta = loader.dataset.metainfo

    data = next(iter(loader))
    inputs = model.data_preprocessor(data, False)['inputs']
    example = inputs[:2]
    masks = stripe_masks(model, delta)

    acc_before = evaluate(model, loader, evaluator, args.max_eval_batches)
    dense = copy.deepcopy(model)
    fold_filter_skeleton(dense, delta)           # exact masked dense model (reference)
    p0, f0 = count_params_flops(model.tensor_path(), example[:1])   # official count: skeletons included
    p0_deploy = count_params(model.tensor_path())['deploy']
    plain = None if args.no_plain else copy.deepcopy(model)

    x_form = torch.randn(max(args.speed_batches or [2]), *inputs.shape[1:])  # forms chosen for the largest batch
    report = model.prune(x_form, delta, form='dense' if args.fold_bn else args.form, dead_blocks=args.dead_blocks)
    if args.fold_bn:
        fold_batchnorm(model, root=model.tensor_path())
        if args.form == 'auto':
            choose_forms(model.tensor_path(), x_form)
        else:
            for m in model.modules():
                if isinstance(m, PrunedConv2d):
                    m.form = args.form
        model.pff_arch = pruned_arch(model)
    dropped = report.pop('__dropped_blocks__', {}).get('blocks', [])
    p1, f1 = count_params_flops(model.tensor_path(), example[:1])
    p1_deploy = count_params(model.tensor_path())['deploy']
    with torch.no_grad():
        ref, got = dense(inputs, mode='tensor'), model(inputs, mode='tensor')
    max_err = float((ref - got).abs().max())
    agreement = float((ref.argmax(1) == got.argmax(1)).float().mean())
    tol = 1e-4 * max(1.0, float(ref.abs().max()))
    if args.dead_blocks != 'shortcut' and not max_err <= tol:
        raise SystemExit(f'pff_prune.py: pruned logits differ from the masked dense model by {max_err:.3g} '
                         f'(tolerance {tol:.3g}); please report this')
    acc_after = evaluate(model, loader, evaluator, args.max_eval_batches)

    meta = dict(source_checkpoint=str(args.checkpoint), config=str(args.config), threshold=delta)
    plain_files = None
    plain_err = None
    if plain is not None:
        plain.prune(example, delta, form='plain', dead_blocks='keep' if args.dead_blocks == 'keep' else 'exact_drop')
        with torch.no_grad():
            plain_err = float((plain(inputs, mode='tensor') - ref).abs().max())
        if not plain_err <= tol:
            raise SystemExit(f'pff_prune.py: plain export differs from the masked dense model by {plain_err:.3g}')
        plain_files = write_plain_export(plain, cfg, stem, inputs[:2], dict(meta, pff_form='plain'))

    speed = {}
    for b in args.speed_batches:
        x = torch.randn(b, *inputs.shape[1:])
        td = time_forward(dense.tensor_path(), x)
        tp = time_forward(model.tensor_path(), x)
        speed[b] = dict(dense_ms=td * 1e3, pruned_ms=tp * 1e3, speedup=td / tp)
        if plain is not None:
            tc = time_forward(plain.tensor_path(), x)
            speed[b].update(plain_ms=tc * 1e3, plain_speedup=td / tc)
    forms = {}
    for m in model.modules():
        if isinstance(m, PrunedConv2d):
            forms[m.form] = forms.get(m.form, 0) + 1

    summary = dict(threshold=delta, acc_before=acc_before, acc_after=acc_after, params_before=p0, params_after=p1,
                   params_before_deploy=p0_deploy, params_after_deploy=p1_deploy,
                   flops_before=f0, flops_after=f1, params_reduction=1 - p1 / p0, flops_reduction=1 - f1 / f0,
                   max_abs_logit_diff=max_err, plain_max_abs_logit_diff=plain_err, prediction_agreement=agreement,
                   speed=speed, forms=forms, dead_blocks=args.dead_blocks, dropped_blocks=dropped,
                   filters_kept=sum(r['filters'][0] for r in report.values()),
                   filters_total=sum(r['filters'][1] for r in report.values()),
                   stripes_kept=sum(r['stripes'][0] for r in report.values()),
                   stripes_total=sum(int(m.numel()) for m in masks.values()))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.pth', dir=out.parent)
    os.close(fd)
    torch.save({'meta': dict(meta, pff=summary), 'state_dict': model.state_dict()}, tmp)
    os.replace(tmp, out)
    arch_path = out.with_name(out.stem + '_arch.pth')
    fd, tmp = tempfile.mkstemp(suffix='.pth', dir=out.parent)
    os.close(fd)
    torch.save(model.pff_arch, tmp)
    os.replace(tmp, arch_path)
    ft_path = out.with_name(out.stem + '_finetune.py')
    fd, tmp = tempfile.mkstemp(suffix='.py', dir=out.parent)
    with os.fdopen(fd, 'w') as f:
        f.write(f"# Fine-tune the PFF-pruned model (written by tools/pff_prune.py): the pruned architecture is built\n"
                f"# at construction from {arch_path.name}, so the optimiser (and DDP) hold the pruned parameters.\n"
                f"_base_ = [{os.path.abspath(args.config)!r}]\n"
                f"model = dict(pruned_arch='{{{{ fileDirname }}}}/{arch_path.name}')\n"
                f"load_from = '{{{{ fileDirname }}}}/{out.name}'\n"
                f"custom_hooks = []  # no skeleton left to regularise\n")
    os.replace(tmp, ft_path)

    # the written checkpoint must load into a freshly built model of the same config, and into one
    # built from the arch record at construction
    fresh = MODELS.build(model_cfg)
    load_checkpoint(fresh, str(out), map_location='cpu', strict=True, logger='silent')
    built = MODELS.build(dict(model_cfg, pruned_arch=str(arch_path)))
    load_checkpoint(built, str(out), map_location='cpu', strict=True, logger='silent')
    with torch.no_grad():
        reload_err = max(float((m.eval()(inputs, mode='tensor') - got).abs().max()) for m in (fresh, built))
    summary['reload_max_abs_diff'] = reload_err
    save_heatmap(masks, heatmap)

    key = next(iter(acc_before))
    print(f'threshold {delta}: filters {summary["filters_kept"]}/{summary["filters_total"]}, '
          f'stripes {summary["stripes_kept"]}/{summary["stripes_total"]}, dropped blocks {len(dropped)}')
    print(f'params (official count, skeletons included) {p0} -> {p1} (-{100 * (1 - p1 / p0):.2f}%); '
          f'deployed weights {p0_deploy} -> {p1_deploy} (-{100 * (1 - p1_deploy / p0_deploy):.2f}%)')
    print(f'FLOPs {f0} -> {f1} (-{100 * (1 - f1 / f0):.2f}%)')
    print(f'{key}: before {acc_before[key]:.2f} -> after {acc_after[key]:.2f}')
    print(f'pruned vs masked dense: max |logit diff| {max_err:.2e}; plain export {plain_err}; '
          f'reloaded checkpoint diff {reload_err:.2e}')
    for b, s in speed.items():
        extra = f', plain {s["plain_ms"]:.2f} ms ({s["plain_speedup"]:.2f}x)' if 'plain_ms' in s else ''
        print(f'batch {b}: dense {s["dense_ms"]:.2f} ms, pruned {s["pruned_ms"]:.2f} ms, speed-up {s["speedup"]:.2f}x'
              + extra)
    print(f'forms chosen: {forms}')
    print(f'wrote {out}, {arch_path}, {ft_path}, {heatmap}')
    if plain_files:
        print('wrote plain export (stock mmpretrain): ' + ', '.join(str(p) for p in plain_files))
    print('PFF_SUMMARY ' + json.dumps(summary, default=float))
    return 0


if __name__ == '__main__':
    sys.exit(main())
