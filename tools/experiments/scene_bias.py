#!/usr/bin/env python
"""Scene-bias experiment: does the pretrained representation encode the motion or the scene?

The claim of DSM and BE / TBE in miniature. Each seed generates its own
``scene-bias-video`` dataset (data seed = seed; unique per-video backgrounds from
class-correlated scene families in ``train``/``val``, decorrelated in ``probe``
and ``test``; the foreground looks the same in every video; classes 0 / 1 are
time reversals of each other), pretrains every method through mmengine's Runner
(configs/mmaction/scene_bias/*) on the biased ``train`` split, and evaluates the
frozen, globally pooled backbone features (2 clips per video, averaged):

* ``test``     - probe trained on the *biased* train split, tested on the
                 decorrelated test split (the headline number),
* ``test_dp``  - probe trained on the *decorrelated* probe split (what is
                 linearly decodable at all, free of the probe's own bias),
* ``val``      - biased probe on held-out scene-correlated clips (in distribution),
* ``pair``     - the biased probe's accuracy on the reversal-sensitive pair
                 (test clips of classes 0 / 1, prediction restricted to {0, 1}),
* ``static``   - static-frame control: the same probe on clips made of one frame
                 repeated (motion removed; chance = no static shortcut),
* ``scene``    - probe for the scene family on the test split (scene content kept).

Every probe is a multinomial logistic regression whose L2 weight is chosen by
5-fold cross-validation (mm_ext.core.video.linear_probe). Methods: ``random``
(untrained), ``supervised`` (the same backbone trained with labels on the
biased train split: an upper bound for what labels buy), ``moco`` (release
baseline: extra negative from another video), ``moco_intra`` (ablation: MoCo +
the intra-video negative DSM / BE get), ``dsm``, ``be`` (BE without TCR, the
release) and ``tbe`` (BE + time reversal + TCR). The queue is a quarter of the
train split. Reported: per-seed values, mean, sample std, Student-t 95 %
interval, and per-seed paired differences against ``moco`` with their interval;
a plot ``scene_bias.png``.

Full size (the defaults): 5 seeds x 7 methods, 4 pretraining epochs on 320 biased train clips
(80 per class; queue 80), 64 val, 256 decorrelated probe-training and 1,024 decorrelated test
clips, one process with one thread. Every finished method is merged into
``seed*/rows.json`` at once, so ``--report-only`` aggregates whatever has finished.
Measured run time of the full run (one process, one thread, 2026-12-01): 40 min of CPU in all
(2,402 s: data 15-20 s, random 21-29 s, supervised 43-60 s and each self-supervised run incl.
its probes 61-85 s per seed; about 8 min of one core per seed), i.e. about 20 min with --jobs 2
on 2 free cores; wall time 82 min on the shared 2-core machine (5-8 runnable processes).

    python tools/experiments/scene_bias.py                          # full: 5 seeds, 4 epochs, 1 job
    python tools/experiments/scene_bias.py --seeds 0,1 --epochs 3 --jobs 2
    python tools/experiments/scene_bias.py --report-only            # re-aggregate seed*/rows.json
"""
import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
CFG_DIR = REPO / 'configs' / 'mmaction' / 'scene_bias'
METHODS = ('random', 'supervised', 'moco', 'moco_intra', 'dsm', 'be', 'tbe')
SSL = ('moco', 'moco_intra', 'dsm', 'be', 'tbe')
CONFIGS = {
    'supervised': 'supervised_r3d-tiny_1xb8-8x1-20e_scene-bias-video.py',
    'moco': 'moco_r3d-tiny_1xb8-8x1-20e_scene-bias-video.py',
    'moco_intra': 'moco-intra_r3d-tiny_1xb8-8x1-20e_scene-bias-video.py',
    'dsm': 'dsm_r3d-tiny_1xb8-8x1-20e_scene-bias-video.py',
    'be': 'be_r3d-tiny_1xb8-8x1-20e_scene-bias-video.py',
    'tbe': 'tbe_r3d-tiny_1xb8-8x1-20e_scene-bias-video.py',
}
COLUMNS = (('test', 'test acc, biased probe (decorrelated)'),
           ('test_dp', 'test acc, decorrelated probe'),
           ('val', 'val acc (scene-correlated)'),
           ('pair', 'reversal pair acc'),
           ('static', 'static-frame control'),
           ('scene', 'scene-family acc on test'))
# full-size data (sized for one CPU core, see the docstring): 320 biased train clips (the probe
# has 128 features), 64 val, 256 decorrelated probe-training and 1,024 decorrelated test clips
DATA_OPTS = dict(train_per_class=80, val_per_class=16, probe_per_class=64, test_per_class=256)
EPOCHS = 4


def _cfg(method, data_root, work_dir, epochs, seed, n_train):
    from mmengine.config import Config
    cfg = Config.fromfile(str(CFG_DIR / CONFIGS['moco' if method == 'random' else method]))
    cfg.work_dir = str(work_dir)
    cfg.train_cfg.max_epochs = max(epochs, 1)
    cfg.param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=max(epochs, 1),
                                eta_min=0.0)]
    cfg.train_dataloader.dataset.ann_file = str(data_root / 'train_list_videos.txt')
    cfg.train_dataloader.dataset.data_prefix = dict(video=str(data_root / 'videos'))
    if method != 'supervised':
        cfg.model.queue_len = max(1, n_train // 4)  # a quarter of the dataset (issue point 1)
    cfg.val_cfg = None
    cfg.val_dataloader = None
    cfg.val_evaluator = None
    cfg.test_cfg = None
    cfg.test_dataloader = None
    cfg.test_evaluator = None
    cfg.train_cfg.val_interval = 10 ** 6
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10 ** 6, save_last=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10 ** 6)
    cfg.log_level = 'ERROR'  # the per-run FileClient deprecation notes
    cfg.randomness = dict(seed=seed)
    return cfg


def pretrain(method, data_root, work_dir, epochs, seed, n_train):
    """Train one method through mmengine's Runner (or build the random-init model); eval mode."""
    from mmengine.runner import Runner
    from mmaction.registry import MODELS
    cfg = _cfg(method, data_root, work_dir, epochs, seed, n_train)
    if method == 'random' or epochs == 0:
        torch.manual_seed(seed)
        model = MODELS.build(cfg.model)
        model.init_weights()
        return model.eval()
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.model.eval()


def _test_pipeline():
    from mmcv.transforms import Compose
    from mmaction.registry import TRANSFORMS
    return Compose([TRANSFORMS.build(t) for t in [
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=8, frame_interval=1, num_clips=2, test_mode=True),
        dict(type='DecordDecode'),
        dict(type='Resize', scale=(-1, 36)),
        dict(type='CenterCrop', crop_size=32),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs'),
    ]])


def load_split(data_root, split, pipeline):
    """Decoded clips (N, clips, C, T, H, W) as uint8, labels (N,), scene families (N,)."""
    meta = json.loads((data_root / 'meta.json').read_text())['clips']
    xs, ys, ss = [], [], []
    for line in (data_root / f'{split}_list_videos.txt').read_text().split('\n'):
        if not line.strip():
            continue
        name, label = line.split()
        r = pipeline(dict(filename=str(data_root / 'videos' / name), label=int(label),
                          start_index=0, modality='RGB'))
        xs.append(r['inputs'].to(torch.uint8))
        ys.append(int(label))
        ss.append(meta[name]['scene'])
    return torch.stack(xs), torch.tensor(ys), torch.tensor(ss)


def static_clips(x):
    """The static-frame control: every clip replaced by its middle frame repeated in time."""
    t = x.shape[-3]
    return x[..., t // 2:t // 2 + 1, :, :].expand_as(x).contiguous()


@torch.no_grad()
def features(model, x, batch=64):
    """Globally pooled query-backbone features of clips (N, clips, C, T, H, W), clips averaged."""
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1, 1)
    out = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        n, v = xb.shape[:2]
        m = model.backbone((xb.flatten(0, 1).float() - mean) / std)
        out.append(m.mean(dim=(2, 3, 4)).view(n, v, -1).mean(1))
    return torch.cat(out)


def evaluate(f, splits, seed, folds=5):
    """All probe accuracies of one model's features (see the module docstring)."""
    from functools import partial

    from mm_ext.core.video import linear_probe
    probe = partial(linear_probe, seed=seed, folds=folds)
    ytr, yte = splits['train'][1], splits['test'][1]
    (val, test), l2 = probe(f['train'], ytr, [(f['val'], splits['val'][1]), (f['test'], yte)])
    (test_dp,), _ = probe(f['probe'], splits['probe'][1], [(f['test'], yte)])
    n_st = len(f['test_static'])  # the static control may use the first n test clips only
    (static,), _ = probe(f['train_static'], ytr, [(f['test_static'], yte[:n_st])])
    (scene,), _ = probe(f['train'], splits['train'][2], [(f['test'], splits['test'][2])])
    # reversal-sensitive pair: 2-way probe on train clips of classes 0 / 1, tested on theirs
    tr01, te01 = ytr < 2, yte < 2
    (pair,), _ = probe(f['train'][tr01], ytr[tr01], [(f['test'][te01], yte[te01])])
    return dict(val=val, test=test, test_dp=test_dp, static=static, scene=scene, pair=pair,
                probe_l2=l2)


def _merge_rows(path, rows):
    """seed*/rows.json keeps the rows of methods run earlier for the same seed."""
    old = json.loads(path.read_text()) if path.exists() else []
    new = {(r['method'], r['epochs']) for r in rows}
    keep = [r for r in old if (r['method'], r['epochs']) not in new]
    _write_atomic(path, json.dumps(keep + rows, indent=1))


def run_seed(seed, work_dir, methods, epochs, data_opts, data_root=None, log=print, folds=5,
             static_max=None):
    """One seed: its own dataset (data seed = seed), every method, all probes; rows (dicts),
    also merged into ``work_dir/rows.json`` after each method."""
    import mm_ext.mmaction  # noqa: F401  (registers the video-SSL components)
    from mmengine.logging import MMLogger
    from mm_ext.datagen import make_dataset
    MMLogger.get_current_instance().setLevel('WARNING')
    logging.getLogger('mmengine').setLevel(logging.ERROR)  # FileClient deprecation notes per run
    t0, c0 = time.time(), time.process_time()
    if data_root is None:
        tag = '-'.join(f'{data_opts[k]}' for k in sorted(data_opts))
        data_root = make_dataset('scene-bias-video', seed=seed, suffix=f'exp{tag}-s{seed}',
                                 **data_opts)
    pipeline = _test_pipeline()
    splits = {s: load_split(data_root, s, pipeline) for s in ('train', 'val', 'probe', 'test')}
    n_train = len(splits['train'][1])
    log(f'[scene_bias] seed {seed}: data {data_root.name} ({n_train} train, '
        f'{len(splits["test"][1])} test clips) ready in {time.time() - t0:.0f}s '
        f'({time.process_time() - c0:.0f}s CPU)')
    rows = []
    for method in methods:
        t1, c1 = time.time(), time.process_time()
        model = pretrain(method, data_root, Path(work_dir) / method,
                         0 if method == 'random' else epochs, seed, n_train)
        f = {s: features(model, v[0]) for s, v in splits.items()}
        f['train_static'] = features(model, static_clips(splits['train'][0]))
        f['test_static'] = features(model, static_clips(splits['test'][0][:static_max]))
        t_train = time.time() - t1
        row = dict(method=method, seed=seed, epochs=epochs, n_train=n_train,
                   n_test=len(splits['test'][1]), **evaluate(f, splits, seed, folds))
        row['seconds'] = time.time() - t1
        row['cpu_seconds'] = time.process_time() - c1  # this process's CPU time (1 thread)
        row['train_seconds'] = t_train
        rows.append(row)
        _merge_rows(Path(work_dir) / 'rows.json', [row])
        log(f'[scene_bias] seed {seed} {method:10s} {row["seconds"]:5.0f}s '
            f'({row["cpu_seconds"]:4.0f}s CPU): test {row["test"]:.1f} '
            f'test_dp {row["test_dp"]:.1f} val {row["val"]:.1f} pair {row["pair"]:.1f} '
            f'static {row["static"]:.1f} scene {row["scene"]:.1f}')
    return rows


def format_report(rows, n_classes=4):
    """Tables: per method mean +- sample std [95% CI] per column, per-seed values, paired vs moco."""
    from mm_ext.core.video import paired_summary, summarize
    methods = [m for m in METHODS if any(r['method'] == m for r in rows)]
    seeds = sorted({r['seed'] for r in rows})
    by = {(r['method'], r['seed']): r for r in rows}
    ep = sorted({r['epochs'] for r in rows})
    n_tr = sorted({r['n_train'] for r in rows})
    n_te = sorted({r['n_test'] for r in rows})
    out = [f'scene-bias-video: frozen-feature probes (CV-chosen L2); pretraining epochs {ep}; '
           f'seeds {seeds} (data seed = seed); train clips {n_tr}, decorrelated test clips {n_te}; '
           f'chance {100 / n_classes:.0f}% (pair: 50%)',
           'cell = mean +- sample std [95% t-interval] over seeds']

    def cell(vals):
        s = summarize(vals)
        if s['n'] == 1:
            return f'{s["mean"]:.1f}'
        return f'{s["mean"]:.1f} +- {s["std"]:.1f} [{s["lo"]:.1f}, {s["hi"]:.1f}]'

    w = 28
    out.append(f'{"method":10s} | ' + ' | '.join(f'{k:>{w}s}' for k, _ in COLUMNS))
    out.append('-' * (13 + (w + 3) * len(COLUMNS)))
    for m in methods:
        cells = []
        for k, _ in COLUMNS:
            vals = [by[(m, s)][k] for s in seeds if (m, s) in by]
            cells.append(f'{cell(vals):>{w}s}')
        out.append(f'{m:10s} | ' + ' | '.join(cells))
    out.append('columns: ' + '; '.join(f'{k} = {d}' for k, d in COLUMNS))
    out.append('')
    out.append('per-seed "test" (biased probe, decorrelated test) and "test_dp":')
    for m in methods:
        vals = ' '.join(f'{by[(m, s)]["test"]:5.1f}/{by[(m, s)]["test_dp"]:5.1f}'
                        for s in seeds if (m, s) in by)
        out.append(f'  {m:10s} {vals}')
    verdicts = []
    if any(r['method'] == 'moco' for r in rows):
        out.append('')
        out.append('paired difference vs moco (same seed and data): mean +- sample std '
                   '[95% t-interval]')
        for m in methods:
            if m == 'moco':
                continue
            common = [s for s in seeds if (m, s) in by and ('moco', s) in by]
            if not common:
                continue
            cells = []
            for k in ('test', 'test_dp', 'pair', 'static'):
                d = paired_summary([by[(m, s)][k] for s in common],
                                   [by[('moco', s)][k] for s in common])
                if d['n'] == 1:
                    cells.append(f'{k} {d["mean"]:+.1f}')
                else:
                    cells.append(f'{k} {d["mean"]:+.1f} +- {d["std"]:.1f} '
                                 f'[{d["lo"]:+.1f}, {d["hi"]:+.1f}]')
                if k == 'test' and m in SSL:
                    if d['n'] < 2:
                        v = 'undecided (one seed)'
                    elif d['lo'] > 0:
                        v = 'better than moco'
                    elif d['hi'] < 0:
                        v = 'worse than moco'
                    else:
                        v = 'not distinguishable from moco (interval contains 0)'
                    verdicts.append(f'  {m}: {v} on the decorrelated test '
                                    f'({d["mean"]:+.1f} points, n = {d["n"]} seeds)')
            out.append(f'  {m:10s} ' + ' | '.join(cells))
    if verdicts:
        out.append('')
        out.append('verdict (biased probe, decorrelated test, paired 95% interval vs moco):')
        out += verdicts
    intra = [m for m in ('dsm', 'be', 'tbe') if m in methods]
    if 'moco_intra' in methods and intra:
        # the ablation: the same intra-video negative, so this is what the disturbance adds
        out.append('')
        out.append('paired difference vs moco_intra (same negatives; what the disturbance adds):')
        for m in intra:
            common = [s for s in seeds if (m, s) in by and ('moco_intra', s) in by]
            if len(common) < 2:
                continue
            cells = []
            for k in ('test', 'test_dp', 'pair'):
                d = paired_summary([by[(m, s)][k] for s in common],
                                   [by[('moco_intra', s)][k] for s in common])
                cells.append(f'{k} {d["mean"]:+.1f} +- {d["std"]:.1f} '
                             f'[{d["lo"]:+.1f}, {d["hi"]:+.1f}]')
            out.append(f'  {m:10s} ' + ' | '.join(cells) + f' (n = {len(common)})')
    secs = [r['seconds'] for r in rows if r['method'] in SSL]
    if secs:
        out.append('')
        out.append(f'time per pretraining run incl. probes: {np.mean(secs):.0f}s mean '
                   f'(sum over all rows {sum(r["seconds"] for r in rows) / 60:.1f} min wall)')
    cpu = [r for r in rows if 'cpu_seconds' in r]
    if cpu:
        ssl_cpu = [r['cpu_seconds'] for r in cpu if r['method'] in SSL]
        out.append(f'CPU time (1 thread): {np.mean(ssl_cpu) if ssl_cpu else 0:.0f}s mean per '
                   f'self-supervised run incl. probes; sum over all rows '
                   f'{sum(r["cpu_seconds"] for r in cpu) / 60:.1f} min')
    return '\n'.join(out)


def plot(rows, path):
    """Per-seed points and mean with 95% interval of "test" and "test_dp" per method."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mm_ext.core.video import summarize
    methods = [m for m in METHODS if any(r['method'] == m for r in rows)]
    fig, ax = plt.subplots(figsize=(1.3 * len(methods) + 2, 4))
    for j, (key, colour, dx) in enumerate((('test', 'tab:blue', -0.12),
                                           ('test_dp', 'tab:orange', 0.12))):
        for i, m in enumerate(methods):
            vals = [r[key] for r in rows if r['method'] == m]
            ax.scatter([i + dx] * len(vals), vals, s=12, color=colour, alpha=0.6)
            s = summarize(vals)
            err = 0 if s['n'] == 1 else s['half']
            ax.errorbar(i + dx, s['mean'], yerr=err, fmt='_', color=colour, capsize=4,
                        markersize=14, label=(('biased probe' if key == 'test' else
                                               'decorrelated probe') if i == 0 else None))
    ax.axhline(25, color='grey', lw=0.8, ls='--')
    ax.set_xticks(range(len(methods)), methods)
    ax.set_ylabel('decorrelated test accuracy (%)')
    ax.set_title('scene-bias-video: per-seed values, mean and 95% interval')
    ax.legend(loc='best', fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix='.png')
    os.close(fd)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _write_atomic(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def collect(work_dir, epochs=None):
    """All rows of seed*/rows.json (of one pretraining length if ``epochs`` is given)."""
    rows = []
    for p in sorted(Path(work_dir).glob('seed*/rows.json')):
        rows += json.loads(p.read_text())
    return [r for r in rows if epochs is None or r['epochs'] == epochs]


def report(work_dir, rows=None):
    rows = collect(work_dir) if rows is None else rows
    if not rows:
        raise SystemExit(f'scene_bias: no seed*/rows.json under {work_dir}')
    text = format_report(rows)
    print(text)
    _write_atomic(Path(work_dir) / 'scene_bias.txt', text + '\n')
    _write_atomic(Path(work_dir) / 'scene_bias.json', json.dumps(rows, indent=1))
    try:
        plot(rows, Path(work_dir) / 'scene_bias.png')
        print(f'plot: {Path(work_dir) / "scene_bias.png"}')
    except ImportError as e:  # matplotlib comes with mmengine; say so instead of failing
        print(f'no plot ({e})')
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--work-dir', default=str(REPO / 'work_dirs' / 'scene_bias'))
    p.add_argument('--methods', default=','.join(METHODS))
    p.add_argument('--epochs', type=int, default=EPOCHS)
    p.add_argument('--seeds', default='0,1,2,3,4', help='comma-separated; data seed = seed')
    p.add_argument('--jobs', type=int, default=1,
                   help='seeds run in parallel processes (1: all seeds in this process)')
    p.add_argument('--threads', type=int, default=1, help='torch threads per process')
    p.add_argument('--data-opt', action='append', default=[], metavar='KEY=INT',
                   help=f'dataset size option (default {DATA_OPTS}), e.g. train_per_class=50')
    p.add_argument('--data-root', default=None,
                   help='use this dataset for every seed instead of generating one per seed')
    p.add_argument('--folds', type=int, default=5, help='cross-validation folds of the probes')
    p.add_argument('--static-max', type=int, default=None,
                   help='static-frame control on the first N test clips only (default: all)')
    p.add_argument('--report-only', action='store_true', help='aggregate seed*/rows.json')
    p.add_argument('--no-report', action='store_true', help='only write seed*/rows.json')
    a = p.parse_args(argv)
    work = Path(a.work_dir)
    if a.report_only:
        return report(work)
    torch.set_num_threads(max(a.threads, 1))
    methods = [m for m in a.methods.split(',') if m]
    bad = sorted(set(methods) - set(METHODS))
    if bad:
        p.error(f'--methods: unknown {bad}; choose from {list(METHODS)}')
    opts = dict(DATA_OPTS)
    for kv in a.data_opt:
        k, _, v = kv.partition('=')
        if k not in DATA_OPTS or not v.isdigit():
            p.error(f'--data-opt {kv!r}: expected one of {list(DATA_OPTS)} = integer')
        opts[k] = int(v)
    seeds = [int(s) for s in a.seeds.split(',') if s]
    data_root = Path(a.data_root) if a.data_root else None
    if data_root is not None and not (data_root / 'probe_list_videos.txt').exists():
        p.error(f'--data-root {data_root} has no probe_list_videos.txt; generate it with '
                '`python tools/make_data.py scene-bias-video`')
    if a.jobs > 1 and len(seeds) > 1:
        procs, pending = [], list(seeds)
        base = [sys.executable, __file__, '--work-dir', str(work), '--methods', a.methods,
                '--epochs', str(a.epochs), '--threads', str(a.threads), '--folds', str(a.folds)] + \
            (['--static-max', str(a.static_max)] if a.static_max else []) + \
            [x for kv in a.data_opt for x in ('--data-opt', kv)] + \
            (['--data-root', a.data_root] if a.data_root else [])
        while pending or procs:
            while pending and len(procs) < a.jobs:
                procs.append(subprocess.Popen(base + ['--seeds', str(pending.pop(0)),
                                                      '--no-report']))
            procs[0].wait()
            if procs[0].returncode:
                raise SystemExit(f'scene_bias: a seed run failed (rc {procs[0].returncode})')
            procs.pop(0)
        return report(work)
    for seed in seeds:
        run_seed(seed, work / f'seed{seed}', methods, a.epochs, opts, data_root, folds=a.folds,
                 static_max=a.static_max)
    if a.no_report:
        return True
    return report(work)


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
