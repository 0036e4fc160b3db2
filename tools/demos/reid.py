#!/usr/bin/env python
"""Demo: softmax baseline vs VA-reID on the generated synth-ped set (CPU, a few minutes at most).

    python tools/demos/reid.py [--epochs 8] [--out work_dirs/demo/reid]

Trains the tiny BNNeck network twice with the same data, sampler, schedule and seed: once with
identity cross-entropy (baseline), once with VA-reID's losses (cosine classifiers, VALSR over
identity x viewpoint classes, triplet). Prints mAP / Rank-1 side by side and saves the ranked
results of a few queries for both models (ranked_<name>.png).
"""
import argparse
import os
import os.path as osp
import time

import reid_ext  # noqa: F401  (registers models and datasets)
from mm_ext.datagen import make_dataset
from reid_ext.apis import run
from reid_ext.config import get_default_config
from reid_ext.visualize import save_ranked_grid

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    'softmax baseline': 'configs/reid/va_reid/baseline_tiny_synth-ped_quick.yaml',
    'VA-reID': 'configs/reid/va_reid/va_reid_tiny_synth-ped_quick.yaml',
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--epochs', type=int, default=None, help='override train.max_epoch of both configs')
    p.add_argument('--out', '--work-dir', dest='out', default=osp.join(REPO, 'work_dirs', 'demo', 'reid'))
    p.add_argument('--num-queries', type=int, default=6)
    a = p.parse_args(argv)
    t0 = time.time()
    root = make_dataset('synth-ped')  # data/synth-ped (reused when present)
    print(f'synth-ped at {root} ({time.time() - t0:.1f}s)')
    rows = []
    for name, cfg_file in CONFIGS.items():
        cfg = get_default_config()
        cfg.merge_from_file(osp.join(REPO, cfg_file))
        tag = name.split()[0].lower().replace('-', '_')
        opts = ['data.root', str(root.parent), 'data.save_dir', osp.join(a.out, tag),
                'train.print_freq', 1000]
        if a.epochs is not None:
            opts += ['train.max_epoch', a.epochs]
        cfg.merge_from_list(opts)
        t = time.time()
        engine = run(cfg, keep_distmat=True)
        res = engine.results['synth_ped']
        rows.append((name, res['mAP'], res['rank1'], res['cmc'][4], time.time() - t))
        query, gallery = engine.datamanager.fetch_test_loaders('synth_ped')
        step = max(1, len(query) // a.num_queries)
        picture = save_ranked_grid(engine.distmats['synth_ped'], query, gallery,
                                   osp.join(a.out, f'ranked_{tag}.png'),
                                   list(range(0, step * a.num_queries, step))[:a.num_queries])
        print(f'ranked results: {picture}')
    print()
    print(f'{"synth-ped (test split)":<22}{"mAP":>8}{"Rank-1":>9}{"Rank-5":>9}{"train+test s":>14}')
    for name, mAP, r1, r5, secs in rows:
        print(f'{name:<22}{100 * mAP:>7.1f}%{100 * r1:>8.1f}%{100 * r5:>8.1f}%{secs:>14.0f}')
    print(f'total {time.time() - t0:.0f}s')


if __name__ == '__main__':
    os.chdir(REPO)
    main()
