#!/usr/bin/env python
"""Filter grafting demo: 2 small ResNets on clutter-shapes-cifar through tools/train.py, a table of
per-epoch member accuracies, mean coefficient and invalid filters, and a picture of every layer's
weight entropy over the epochs (``work_dirs/demo/grafting/entropy.png``).

    python tools/demos/grafting.py [--epochs 5] [--work-dir work_dirs/demo/grafting]
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CFG = 'configs/mmpretrain/grafting/grafting_resnet20-w8-2net_1xb64-15e_clutter-shapes.py'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--epochs', type=int, default=5)
    ap.add_argument('--work-dir', default='work_dirs/demo/grafting')
    args = ap.parse_args()
    wd = Path(args.work_dir)
    wd = wd if wd.is_absolute() else REPO / wd
    wd.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    sys.path.insert(0, str(REPO))
    from mm_ext.datagen import make_dataset
    make_dataset('clutter-shapes-cifar', root=REPO / 'data')
    jl = wd / 'train' / 'grafting.jsonl'
    if jl.exists():
        jl.unlink()
    e = args.epochs
    cmd = [sys.executable, 'tools/train.py', CFG, '--work-dir', str(wd / 'train'), '--cfg-options',
           f'train_cfg.max_epochs={e}', f'param_scheduler.0.milestones=[{max(1, round(e * 0.6))},{max(2, round(e * 0.85))}]',
           f'default_hooks.checkpoint.interval={e}']
    log = wd / 'train.log'
    from mm_ext.engine.progress import run_logged  # output in the log, a progress line on the terminal
    run_logged(cmd, log, f'grafting train {e} epochs', cwd=REPO,
               env=dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1')))
    recs = [json.loads(line) for line in jl.read_text().splitlines()]
    # validation metrics per epoch from the runner's scalar log
    scal = sorted((wd / 'train').glob('*/vis_data/scalars.json'))[-1]
    vals = [json.loads(line) for line in scal.read_text().splitlines()]
    vals = [v for v in vals if 'accuracy/top1' in v]
    print(f'filter grafting, 2 x ResNet-20-w8 on clutter-shapes-cifar, {e} epochs ({CFG})')
    print(f'{"epoch":>5s} {"net0 top-1":>10s} {"net1 top-1":>10s} {"ensemble":>9s} {"mean w net0":>11s} '
          f'{"mean w net1":>11s} {"invalid (L1<0.01)":>17s}')
    for i, v in enumerate(vals, start=1):
        g = [r for r in recs if r['epoch'] == i]  # graft before epoch i+1 used epoch i's weights
        ws = [sum(x['w'] for x in r['layers'].values()) / len(r['layers']) for r in g]
        inv = [r['invalid_ratio'] for r in g]
        print(f'{i:5d} {v["accuracy/net0_top1"]:10.2f} {v["accuracy/net1_top1"]:10.2f} '
              f'{v["accuracy/ensemble_top1"]:9.2f} '
              + (f'{ws[0]:11.3f} {ws[1]:11.3f} {100 * sum(inv) / len(inv):16.2f}%' if ws else
                 f'{"-":>11s} {"-":>11s} {"-":>17s}'))
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for k, ax in enumerate(axes):
            rs = [r for r in recs if r['net'] == k]
            layers = list(rs[0]['layers'])
            for j, name in enumerate(layers):
                ax.plot([r['epoch'] for r in rs], [r['layers'][name]['H'] for r in rs],
                        color=plt.cm.viridis(j / max(1, len(layers) - 1)), lw=1)
            ax.set_title(f'net{k}: layer weight entropy (pre-graft), colour = depth')
            ax.set_xlabel('epoch')
        axes[0].set_ylabel('entropy (nats, 10 bins)')
        fig.tight_layout()
        out = wd / 'entropy.png'
        tmp = wd / 'entropy.part.png'
        fig.savefig(tmp, dpi=90)
        os.replace(tmp, out)
        print(f'picture: {out}')
    except ImportError:
        print('matplotlib missing: no picture')
    print(f'demo time {time.time() - t0:.0f} s')


if __name__ == '__main__':
    main()
