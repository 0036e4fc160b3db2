#!/usr/bin/env python
"""Export a PFF-trained mmpretrain model as a physically pruned, standalone checkpoint.

    python tools/pff_prune.py CONFIG CHECKPOINT [--out PRUNED.pth] [--threshold 0.01]

Builds the model of CONFIG, loads CHECKPOINT, evaluates it, prunes it (fold the Filter
Skeleton, drop stripes with |I| <= threshold, remove dead filters and the inputs they fed
where no residual couples them, pick the fastest exact form per conv), checks its logits
against the masked dense model on a test batch, evaluates it again, measures dense vs
pruned wall-clock, writes the pruned checkpoint (temp file + rename; it loads into the
same config's model without any training hook, e.g. with tools/test.py) and a per-layer
stripe-survival heatmap PNG. The last line is ``PFF_SUMMARY {json}``.
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

    from mm_ext.core.pruning import (PrunedConv2d, count_params_flops, fold_filter_skeleton,
                                     prune_filter_skeleton, stripe_masks)

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

    delta = _threshold(cfg, args.threshold)
    out = Path(args.out) if args.out else Path(args.checkpoint).with_name(Path(args.checkpoint).stem + '_pruned.pth')
    heatmap = Path(args.heatmap) if args.heatmap else out.with_name(out.stem + '_stripes.png')

    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:  # the Runner merges the top-level preprocessor the same way
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    if not hasattr(model, 'tensor_path'):
        raise SystemExit(f'pff_prune.py: model type {type(model).__name__} is not a PFFImageClassifier; '
                         "set model.type='PFFImageClassifier' in the config")
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True, logger='silent')
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
    full = copy.deepcopy(model)
    fold_filter_skeleton(full, 0.0)              # unpruned architecture, for the cost baseline
    p0, f0 = count_params_flops(full.tensor_path(), example[:1])
    del full

    report = prune_filter_skeleton(model, example, delta, form='auto', root=model.tensor_path())
    p1, f1 = count_params_flops(model.tensor_path(), example[:1])
    with torch.no_grad():
        ref, got = dense(inputs, mode='tensor'), model(inputs, mode='tensor')
    max_err = float((ref - got).abs().max())
    agreement = float((ref.argmax(1) == got.argmax(1)).float().mean())
    tol = 1e-4 * max(1.0, float(ref.abs().max()))
    if not max_err <= tol:
        raise SystemExit(f'pff_prune.py: pruned logits differ from the masked dense model by {max_err:.3g} '
                         f'(tolerance {tol:.3g}); please report this')
    acc_after = evaluate(model, loader, evaluator, args.max_eval_batches)

    speed = {}
    for b in args.speed_batches:
        x = torch.randn(b, *inputs.shape[1:])
        td = time_forward(dense.tensor_path(), x)
        tp = time_forward(model.tensor_path(), x)
        speed[b] = dict(dense_ms=td * 1e3, pruned_ms=tp * 1e3, speedup=td / tp)
    forms = {}
    for m in model.modules():
        if isinstance(m, PrunedConv2d):
            for f in m.choices.values():
                forms[f] = forms.get(f, 0) + 1

    summary = dict(threshold=delta, acc_before=acc_before, acc_after=acc_after, params_before=p0, params_after=p1,
                   flops_before=f0, flops_after=f1, params_reduction=1 - p1 / p0, flops_reduction=1 - f1 / f0,
                   max_abs_logit_diff=max_err, prediction_agreement=agreement, speed=speed, forms=forms,
                   filters_kept=sum(r['filters'][0] for r in report.values()),
                   filters_total=sum(r['filters'][1] for r in report.values()),
                   stripes_kept=sum(r['stripes'][0] for r in report.values()),
                   stripes_total=sum(int(m.numel()) for m in masks.values()))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.pth', dir=out.parent)
    os.close(fd)
    torch.save({'meta': dict(pff=summary, source_checkpoint=str(args.checkpoint), config=str(args.config)),
                'state_dict': model.state_dict()}, tmp)
    os.replace(tmp, out)

    # the written checkpoint must load into a freshly built model of the same config
    fresh = MODELS.build(model_cfg)
    load_checkpoint(fresh, str(out), map_location='cpu', strict=True, logger='silent')
    fresh.eval()
    with torch.no_grad():
        reload_err = float((fresh(inputs, mode='tensor') - got).abs().max())
    summary['reload_max_abs_diff'] = reload_err
    save_heatmap(masks, heatmap)

    key = next(iter(acc_before))
    print(f'threshold {delta}: filters {summary["filters_kept"]}/{summary["filters_total"]}, '
          f'stripes {summary["stripes_kept"]}/{summary["stripes_total"]}')
    print(f'params {p0} -> {p1} (-{100 * (1 - p1 / p0):.2f}%), FLOPs {f0} -> {f1} (-{100 * (1 - f1 / f0):.2f}%)')
    print(f'{key}: before {acc_before[key]:.2f} -> after {acc_after[key]:.2f}')
    print(f'pruned vs masked dense: max |logit diff| {max_err:.2e}; reloaded checkpoint diff {reload_err:.2e}')
    for b, s in speed.items():
        print(f'batch {b}: dense {s["dense_ms"]:.2f} ms, pruned {s["pruned_ms"]:.2f} ms, speed-up {s["speedup"]:.2f}x')
    print(f'forms chosen: {forms}')
    print(f'wrote {out} and {heatmap}')
    print('PFF_SUMMARY ' + json.dumps(summary, default=float))
    return 0


if __name__ == '__main__':
    sys.exit(main())
