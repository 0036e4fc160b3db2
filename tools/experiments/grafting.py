#!/usr/bin/env python
"""Filter grafting / DGD experiment on the embedded clutter-shapes-cifar set, over several seeds.

Arms (all through mmengine's Runner with configs/mmpretrain/grafting/*_clutter-shapes.py, same
network, data pipeline, recipe and epochs):

* ``baseline`` - 1 network at the config's LR (0.1);
* ``tuned``    - 1 network at the LR that gave the best final test accuracy in a sweep
                 (``--lr-grid``) on a separate tuning seed (``--tune-seed``, not an evaluation
                 seed). The selection uses the test split (there is no validation split), which
                 favours the tuned baseline: a conservative comparison for grafting;
* ``grafting`` - 2 networks, layer-level entropy grafting every epoch (pre-graft evaluation);
* ``dgd``      - ``grafting`` + online distillation (T^2 KL at T = 2, weight 1, teacher = the other
                 member's logits on the student's own batch; project defaults, unverified).

Seed s fixes the initialisation of member k and its data order/augmentation stream, so member 0
of every arm starts from the same weights as the baseline and reads the same batches: the per-seed
differences are paired. When the sweep picks the config's own LR, the ``tuned`` arm is the
``baseline`` run itself (same seed, config and LR) and is not trained twice. For the 2-network arms
``acc`` is the mean of the two members' top-1 (each member is a model of the baseline's size);
the ensemble is reported separately. Reported per arm: mean +- sample std and Student-t 95 %
interval of best-epoch and final top-1 and of the final invalid-filter ratio (filter L1 norm <
``--invalid-threshold``), and the paired differences against ``baseline`` and ``tuned``.

    python tools/experiments/grafting.py          # defaults: 3 seeds, 14 epochs, 100 train images/class

Cost, measured on this machine (one thread, 1000 train + 1000 test images per epoch): 10-13 s per
epoch for one network, 19-22 s for grafting, 18-25 s for DGD (lower figure: quiet machine, higher:
shared with other jobs); the defaults (LR sweep of 3 + 3 seeds x 3-4 arms x 14 epochs) come to
~40-55 min on one core; measured: 2308 s (one thread, 2-core machine shared with other jobs).
"""
import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
CFG_DIR = REPO / 'configs' / 'mmpretrain' / 'grafting'
CONFIGS = {
    'baseline': 'baseline_resnet20-w8_1xb64-15e_clutter-shapes.py',
    'tuned': 'baseline_resnet20-w8_1xb64-15e_clutter-shapes.py',
    'grafting': 'grafting_resnet20-w8-2net_1xb64-15e_clutter-shapes.py',
    'dgd': 'dgd_resnet20-w8-2net_1xb64-15e_clutter-shapes.py',
}
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def run_arm(arm, seed, args, data_root, lr=None):
    """Train one arm through the Runner; returns per-epoch metrics and final invalid ratios."""
    import torch
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from mm_ext.core.grafting import invalid_filter_stats

    cfg = Config.fromfile(str(CFG_DIR / CONFIGS[arm]))
    tag = f'{arm}_seed{seed}' + (f'_lr{lr:g}' if lr is not None else '')
    cfg.work_dir = str(Path(args.work_dir) / tag)
    cfg.experiment_name = f'grafting_exp_{tag}_{int(time.time() * 1000)}'
    cfg.randomness = dict(seed=seed, deterministic=False)
    for ds in (cfg.train_dataloader.dataset.dataset, cfg.val_dataloader.dataset):
        ds.data_root = str(data_root)
    cfg.train_cfg.max_epochs = args.epochs
    m1, m2 = round(args.epochs * 0.6), round(args.epochs * 0.85)
    cfg.param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[m1, m2], gamma=0.1)]
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=args.epochs, max_keep_ckpts=1)
    cfg.default_hooks.logger.interval = 1000
    cfg.log_level = 'WARNING'

    history = []

    class Record(Hook):
        def after_val_epoch(self, runner, metrics=None):
            history.append({k: float(v) for k, v in (metrics or {}).items()})

    runner = Runner.from_cfg(cfg)
    runner.register_hook(Record())
    t0 = time.time()
    runner.train()
    model = runner.model
    inv = {thr: [invalid_filter_stats(s, thr)['ratio'] for s in model.local_states().values()]
           for thr in args.invalid_threshold}
    del runner
    torch.set_num_threads(args.threads)
    return {'arm': arm, 'seed': seed, 'lr': lr, 'metrics': history, 'invalid': inv, 'time_s': time.time() - t0}


def config_lr(arm):
    from mmengine.config import Config
    return float(Config.fromfile(str(CFG_DIR / CONFIGS[arm])).optim_wrapper.optimizer.lr)


def summarise(values):
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float('nan'), float('nan')
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, sd, T975.get(n - 1, 1.96) * sd / math.sqrt(n)


def row_values(r, thr):
    accs = [m['accuracy/top1'] for m in r['metrics']]
    inv = r['invalid'][thr] if thr in r['invalid'] else r['invalid'][str(thr)]  # str keys after a JSON round trip
    out = {'best': max(accs), 'final': accs[-1], 'invalid': 100 * sum(inv) / len(inv)}
    if 'accuracy/ensemble_top1' in r['metrics'][-1] and r['arm'] in ('grafting', 'dgd'):
        out['ensemble'] = r['metrics'][-1]['accuracy/ensemble_top1']
    return out


def write_atomic(path, text):
    path = Path(path)
    tmp = path.with_name(path.name + '.part')
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--epochs', type=int, default=14)
    ap.add_argument('--arms', nargs='+', default=['baseline', 'tuned', 'grafting', 'dgd'], choices=list(CONFIGS))
    ap.add_argument('--lr-grid', type=float, nargs='+', default=[0.05, 0.1, 0.2])
    ap.add_argument('--tune-seed', type=int, default=100)
    ap.add_argument('--train-per-class', type=int, default=100)
    ap.add_argument('--invalid-threshold', type=float, nargs='+', default=[0.1, 0.01])
    ap.add_argument('--tuned-lr', type=float, default=None,
                    help='use this LR for the tuned arm instead of sweeping (e.g. from an earlier --tune-only run)')
    ap.add_argument('--tune-only', action='store_true', help='only run the LR sweep')
    ap.add_argument('--merge', nargs='+', default=None,
                    help='only aggregate the results.json of these work dirs (runs split over processes)')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--work-dir', default='work_dirs/experiments/grafting')
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    import mm_ext.mmpretrain  # noqa: F401
    from mm_ext.datagen import make_dataset

    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    if args.merge:
        rows, sweep, tuned_lr = [], [], args.tuned_lr
        for d in args.merge:
            res = json.loads((Path(d) / 'results.json').read_text())
            rows += res['rows']
            sweep += [tuple(x) for x in res['sweep']]
            tuned_lr = res['tuned_lr'] if res['tuned_lr'] is not None else tuned_lr
        report(args, rows, sweep, tuned_lr, time.time())
        return 0
    opts = {} if args.train_per_class == 150 else {'train_per_class': args.train_per_class,
                                                    'suffix': f'tpc{args.train_per_class}'}
    data_root = make_dataset('clutter-shapes-cifar', root=REPO / 'data', **opts)
    t_start = time.time()
    rows, tuned_lr, sweep = [], args.tuned_lr, []
    if ('tuned' in args.arms or args.tune_only) and tuned_lr is None:
        for lr in args.lr_grid:
            r = run_arm('baseline', args.tune_seed, args, data_root, lr=lr)
            sweep.append((lr, r['metrics'][-1]['accuracy/top1']))
            print(f'[tune seed {args.tune_seed}] lr {lr:g}: final top-1 {sweep[-1][1]:.2f} ({r["time_s"]:.0f} s)',
                  flush=True)
            write_atomic(Path(args.work_dir) / 'results.json',  # the sweep survives an interruption too
                         json.dumps({'args': vars(args), 'tuned_lr': None, 'sweep': sweep, 'rows': rows}, indent=1))
        tuned_lr = max(sweep, key=lambda x: x[1])[0]
        print(f'tuned baseline lr = {tuned_lr:g}', flush=True)
    for seed in ([] if args.tune_only else args.seeds):
        for arm in args.arms:
            base = [x for x in rows if x['arm'] == 'baseline' and x['seed'] == seed]
            if arm == 'tuned' and base and math.isclose(tuned_lr, config_lr('baseline')):
                r = dict(copy.deepcopy(base[0]), arm='tuned', lr=tuned_lr, same_run_as='baseline')
            else:
                r = run_arm(arm, seed, args, data_root, lr=tuned_lr if arm == 'tuned' else None)
            rows.append(r)
            write_atomic(Path(args.work_dir) / 'results.json',  # partial results survive an interruption
                         json.dumps({'args': vars(args), 'tuned_lr': tuned_lr, 'sweep': sweep, 'rows': rows}, indent=1))
            v = row_values(r, args.invalid_threshold[0])
            print(f'[seed {seed}] {arm:9s} best {v["best"]:.2f} final {v["final"]:.2f} '
                  f'invalid {v["invalid"]:.2f}% ({r["time_s"]:.0f} s)', flush=True)
    report(args, rows, sweep, tuned_lr, t_start)
    return 0


def report(args, rows, sweep, tuned_lr, t_start):
    """Print and write the table of ``rows`` (atomic ``results.json`` / ``results.txt``)."""
    thr = args.invalid_threshold[0]
    arms = [a for a in args.arms if any(r['arm'] == a for r in rows)]
    seeds = sorted({r['seed'] for r in rows})
    rows = sorted(rows, key=lambda r: (r['arm'], r['seed']))
    lines = [f'clutter-shapes-cifar ({args.train_per_class}/class train, 100/class test), ResNet-20-w8, '
             f'{args.epochs} epochs, seeds {seeds}; tuned LR {tuned_lr} from {sweep}',
             f'top-1 % of a member (2-net arms: mean of both members); mean +- std [95% CI]; invalid = filters '
             f'with L1 < {thr} (%)',
             f'{"arm":10s} {"best-epoch top-1":>26s} {"final top-1":>26s} {"invalid %":>22s} {"ensemble":>10s}']
    table = {}
    for arm in arms:
        vals = [row_values(r, thr) for r in rows if r['arm'] == arm]
        table[arm] = vals
        cells = []
        for key in ('best', 'final', 'invalid'):
            m, sd, ci = summarise([v[key] for v in vals])
            cells.append(f'{m:6.2f} +- {sd:4.2f} [{m - ci:5.2f},{m + ci:5.2f}]')
        ens = [v['ensemble'] for v in vals if 'ensemble' in v]
        lines.append(f'{arm:10s} {cells[0]:>26s} {cells[1]:>26s} {cells[2]:>22s} '
                     f'{(f"{sum(ens) / len(ens):6.2f}" if ens else "-"):>10s}')
    lines.append('paired differences (arm - reference, same seed): mean [95% CI] of best / final top-1')
    for ref in ('baseline', 'tuned'):
        if ref not in table:
            continue
        for arm in arms:
            if arm == ref or arm not in table:
                continue
            cells = []
            for key in ('best', 'final'):
                d = [a[key] - b[key] for a, b in zip(table[arm], table[ref])]
                m, sd, ci = summarise(d)
                cells.append(f'{m:+6.2f} [{m - ci:+6.2f},{m + ci:+6.2f}]')
            lines.append(f'  {arm:9s} - {ref:9s}: best {cells[0]}  final {cells[1]}')
    lines.append(f'total {time.time() - t_start:.0f} s')
    text = '\n'.join(lines)
    print(text)
    write_atomic(Path(args.work_dir) / 'results.json',
                 json.dumps({'args': vars(args), 'tuned_lr': tuned_lr, 'sweep': sweep, 'rows': rows}, indent=1))
    write_atomic(Path(args.work_dir) / 'results.txt', text + '\n')


if __name__ == '__main__':
    sys.exit(main())
