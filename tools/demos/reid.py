#!/usr/bin/env python
"""Demo: BoT baseline vs VA-reID on the generated synth-ped set (CPU).

    python tools/demos/reid.py                      # one train seed, about 2-3 minutes
    python tools/demos/reid.py --seeds 1 2 3 4 5    # the multi-seed experiment (paired)
    python tools/demos/reid.py --seeds 1 2 3 4 5 --view-effect 0   # control: no viewpoint effect
    python tools/demos/reid.py --seeds 1 2 3 4 5 --reuse  # reuse finished runs (runs/*.json)

synth-ped is generated with its viewpoint effect (``view_effect``: one person looks very
different from the front, the side and the back; many people look alike from one viewpoint).
Both methods train the same tiny BNNeck network with the same data, sampler, schedule and seed,
with label-smoothed identity CE + triplet (margin 0.6); VA-reID adds the identity-viewpoint
classifier trained with VALSR (configs/reid/va_reid/*_tiny_synth-ped_quick.yaml). Printed:
mAP / Rank-1 on the whole test split and the cross-view protocol of the paper's viewpoint
table (queries of one viewpoint against the gallery images of the other viewpoints, averaged
over the three viewpoints); ranked results of a few queries go to ranked_<method>.png.

With several seeds: per seed and method the numbers, then mean and 95 % t-interval per method
and of the paired differences (VA-reID minus baseline, same seed).
"""
import argparse
import json
import math
import os
import os.path as osp
import pickle
import time

import numpy as np

import reid_ext  # noqa: F401  (registers models and datasets)
from mm_ext.datagen import make_dataset
from mm_ext.engine.progress import Heartbeat, host_output_to
from reid_ext.apis import run
from reid_ext.config import get_default_config
from reid_ext.core import evaluate_rank_fast
from reid_ext.visualize import save_ranked_grid

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    'baseline': 'configs/reid/va_reid/baseline_tiny_synth-ped_quick.yaml',
    'VA-reID': 'configs/reid/va_reid/va_reid_tiny_synth-ped_quick.yaml',
}
# two-sided 95 % quantiles of Student's t, by degrees of freedom
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
         17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042}


def t_interval(values):
    """(mean, half width of the 95 % t-interval); half width nan for one value."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float(x.mean()), float('nan')
    df = len(x) - 1
    t = 1.96 if df > 30 else _T975[max(k for k in _T975 if k <= df)]  # conservative between rows
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(len(x)))


def cross_view(distmat, query, gallery, views):
    """Mean over the viewpoints v of (mAP, Rank-1) of the queries seen from v against the
    gallery images seen from the other viewpoints (Market protocol otherwise)."""
    qv = np.array([views[osp.basename(it[0])][0] for it in query])
    gv = np.array([views[osp.basename(it[0])][0] for it in gallery])
    q_pids, q_cams = np.array([it[1] for it in query]), np.array([it[2] for it in query])
    g_pids, g_cams = np.array([it[1] for it in gallery]), np.array([it[2] for it in gallery])
    maps, r1s = [], []
    for v in range(3):
        qi, gi = np.nonzero(qv == v)[0], np.nonzero(gv != v)[0]
        cmc, mAP = evaluate_rank_fast(distmat[np.ix_(qi, gi)], q_pids[qi], g_pids[gi], q_cams[qi],
                                      g_cams[gi])
        maps.append(mAP)
        r1s.append(float(cmc[0]))
    return float(np.mean(maps)), float(np.mean(r1s))


def train_one(name, root, out, seed, epochs, pictures):
    cfg = get_default_config()
    cfg.merge_from_file(osp.join(REPO, CONFIGS[name]))
    tag = name.lower().replace('-', '_')
    opts = ['data.root', str(root), 'data.save_dir', osp.join(out, f'{tag}_seed{seed}'),
            'train.print_freq', 1000, 'train.seed', seed]
    if epochs is not None:
        opts += ['train.max_epoch', epochs]
    cfg.merge_from_list(opts)
    t = time.time()
    log = osp.join(out, f'{tag}_seed{seed}.log')  # torchreid's data tables and epoch lines go here
    with host_output_to(log), Heartbeat(f'{name} seed {seed}', log=log):
        engine = run(cfg, keep_distmat=True)
    res = engine.results['synth_ped']
    query, gallery = engine.datamanager.fetch_test_loaders('synth_ped')
    distmat = engine.distmats['synth_ped']
    with open(osp.join(str(root), 'market1501', 'viewpoint_labels.pkl'), 'rb') as f:
        views = pickle.load(f)
    xv_map, xv_r1 = cross_view(distmat, query, gallery, views)
    if pictures:
        step = max(1, len(query) // pictures)
        path = save_ranked_grid(distmat, query, gallery, osp.join(out, f'ranked_{tag}.png'),
                                list(range(0, step * pictures, step))[:pictures])
        print(f'ranked results: {path}')
    return dict(mAP=100 * res['mAP'], r1=100 * res['rank1'], xv_mAP=100 * xv_map,
                xv_r1=100 * xv_r1, secs=time.time() - t)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seeds', type=int, nargs='+', default=[1], help='train seeds (paired runs)')
    p.add_argument('--epochs', type=int, default=None, help='override train.max_epoch of both configs')
    p.add_argument('--view-effect', type=float, default=1.0,
                   help='synth-ped view_effect (1: strong viewpoint effect, 0: none). Default 1')
    p.add_argument('--out', '--work-dir', dest='out', default=osp.join(REPO, 'work_dirs', 'demo', 'reid'))
    p.add_argument('--num-queries', type=int, default=6, help='queries in the ranked pictures')
    p.add_argument('--reuse', action='store_true',
                   help='reuse the results of runs already finished under --out (runs/*.json)')
    a = p.parse_args(argv)
    t0 = time.time()
    # an explicit, suffixed folder: never a stale data/synth-ped of an older generator
    tag = f'views{a.view_effect:g}'.replace('.', 'p')
    root = make_dataset('synth-ped', view_effect=a.view_effect, suffix=tag)
    print(f'synth-ped (view_effect={a.view_effect:g}) at {root} ({time.time() - t0:.1f}s)')
    results = {name: [] for name in CONFIGS}
    for seed in a.seeds:
        for name in CONFIGS:
            # one JSON per finished run, so a long experiment can be split and resumed
            done = osp.join(a.out, 'runs', f'{tag}_ep{a.epochs or "cfg"}',
                            f'{name.lower().replace("-", "_")}_seed{seed}.json')
            if a.reuse and osp.isfile(done):
                with open(done) as f:
                    results[name].append(json.load(f))
                continue
            pictures = a.num_queries if seed == a.seeds[0] else 0
            res = train_one(name, root, a.out, seed, a.epochs, pictures)
            os.makedirs(osp.dirname(done), exist_ok=True)
            with open(done + '.tmp', 'w') as f:
                json.dump(res, f)
            os.replace(done + '.tmp', done)
            results[name].append(res)
    keys = (('mAP', 'mAP'), ('r1', 'Rank-1'), ('xv_mAP', 'x-view mAP'), ('xv_r1', 'x-view R1'))
    print()
    print(f'synth-ped test split, view_effect={a.view_effect:g}, seeds {a.seeds} '
          '(x-view: queries vs gallery of the other viewpoints)')
    print(f'{"seed":<6}{"method":<10}' + ''.join(f'{h:>12}' for _, h in keys) + f'{"s":>6}')
    for i, seed in enumerate(a.seeds):
        for name in CONFIGS:
            r = results[name][i]
            print(f'{seed:<6}{name:<10}' + ''.join(f'{r[k]:>11.1f}%' for k, _ in keys)
                  + f'{r["secs"]:>6.0f}')
    if len(a.seeds) > 1:
        print(f'\nmean and 95 % t-interval over {len(a.seeds)} seeds')
        for name in CONFIGS:
            cells = [t_interval([r[k] for r in results[name]]) for k, _ in keys]
            print(f'{"":<6}{name:<10}' + ''.join(f'{m:>6.1f}+-{h:<4.1f}' for m, h in cells))
        print('\npaired difference VA-reID - baseline (points), per seed, mean +- 95 % t-interval')
        for k, h in keys:
            d = [v[k] - b[k] for v, b in zip(results['VA-reID'], results['baseline'])]
            m, hw = t_interval(d)
            verdict = ('VA-reID better' if m - hw > 0 else 'baseline better' if m + hw < 0
                       else 'undecided (interval contains 0)')
            print(f'  {h:<11}' + ' '.join(f'{x:+5.1f}' for x in d) + f'   mean {m:+.2f} +- {hw:.2f}'
                  f'  ({sum(x > 0 for x in d)}/{len(d)} positive) -> {verdict}')
    print(f'total {time.time() - t0:.0f}s')


if __name__ == '__main__':
    os.chdir(REPO)
    main()
