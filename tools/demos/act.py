#!/usr/bin/env python
"""Demo: ACT (asymmetric co-teaching) adapting synth-ped style 0 -> style 1 (CPU, ~3 minutes).

    python tools/demos/act.py [--work-dir work_dirs/demo/act] [--rounds 4 --epochs 3]

Data: synth-ped generated twice into ``data/act-synth/`` (style 0 and style 1, no
viewpoint-dependent outfits, 60 training and 40 test identities each, 64 x 32 pixels).

1. A tiny BNNeck network is trained on the labelled source domain (synth-ped, style 0):
   configs/reid/act/source_only_tiny_synth-ped.yaml.
2. ACT starts both networks from it and adapts to the unlabelled target (synth-ped-style1, other
   palettes, lighting and backgrounds): configs/reid/act/act_tiny_synth-ped_quick.yaml. The
   target identities are used only for evaluation and to measure the pseudo-labels.

Printed: target mAP / Rank-1 of direct transfer (the source-only network's pool5 features, as
ACT evaluates) and after each ACT round, plus per round the number of clusters, the outlier
fraction, the pseudo-label purity (inliers / all after outlier labelling) and NMI against the
hidden identities. The same curves are plotted to ``<work-dir>/act_rounds.png``.
"""
import argparse
import os
import os.path as osp
import time

import reid_ext  # noqa: F401  (registers models and datasets)
from mm_ext.datagen import make_dataset
from mm_ext.engine.progress import Heartbeat, host_output_to
from reid_ext.apis import run
from reid_ext.config import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SOURCE_CFG = osp.join(REPO, 'configs/reid/act/source_only_tiny_synth-ped.yaml')
ACT_CFG = osp.join(REPO, 'configs/reid/act/act_tiny_synth-ped_quick.yaml')
TARGET = 'synth_ped_style1'
#: both domains: no viewpoint-dependent outfits (VA-reID's problem), so that the domain shift
#: (palettes, lighting, backgrounds) is what ACT has to bridge; CPU-sized
DATA_OPTS = dict(num_train_ids=60, num_test_ids=40, num_distractors=20, height=64, width=32,
                 view_effect=0.0)


def plot(history, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rounds = [h for h in history if h['round'] >= 0]
    x = [h['round'] + 1 for h in rounds]
    direct = [h for h in history if h['round'] < 0]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    ax[0].plot(x, [h['num_clusters'] for h in rounds], 'o-')
    ax[0].axhline(rounds[0]['num_ids'], ls='--', c='gray', label='true identities')
    ax[0].set_title('clusters')
    ax[0].legend()
    ax[1].plot(x, [h['outlier_frac'] for h in rounds], 'o-', label='outlier fraction')
    ax[1].plot(x, [h['purity_inliers'] for h in rounds], 's-', label='purity (inliers)')
    ax[1].plot(x, [h['purity_all'] for h in rounds], '^-', label='purity (all, labelled)')
    ax[1].plot(x, [h['nmi_all'] for h in rounds], 'd-', label='NMI (all)')
    ax[1].set_ylim(0, 1.02)
    ax[1].set_title('pseudo-labels vs hidden identities')
    ax[1].legend(fontsize=8)
    ax[2].plot(x, [100 * h[f'mAP_{TARGET}'] for h in rounds], 'o-', label='ACT mAP')
    ax[2].plot(x, [100 * h[f'rank1_{TARGET}'] for h in rounds], 's-', label='ACT Rank-1')
    if direct:
        ax[2].axhline(100 * direct[0][f'mAP_{TARGET}'], ls='--', c='C0', label='direct mAP')
        ax[2].axhline(100 * direct[0][f'rank1_{TARGET}'], ls=':', c='C1', label='direct Rank-1')
    ax[2].set_title('target test (%)')
    ax[2].legend(fontsize=8)
    for a in ax:
        a.set_xlabel('round')
        a.set_xticks(x)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'demo', 'act'))
    p.add_argument('--data-root', default=osp.join(REPO, 'data', 'act-synth'),
                   help='folder that receives synth-ped/ and synth-ped-style1/')
    p.add_argument('--rounds', type=int, default=None, help='ACT rounds (config: 4)')
    p.add_argument('--epochs', type=int, default=None, help='epochs per round (config: 3)')
    a = p.parse_args(argv)
    t0 = time.time()
    os.makedirs(a.work_dir, exist_ok=True)
    make_dataset('synth-ped', root=a.data_root, seed=0, **DATA_OPTS)
    make_dataset('synth-ped', root=a.data_root, seed=1, style=1, suffix='style1', **DATA_OPTS)

    src_dir = osp.join(a.work_dir, 'source_only')
    cfg = load_config(SOURCE_CFG, ['data.root', a.data_root, 'data.save_dir', src_dir])
    log = osp.join(a.work_dir, 'source_only.log')  # torchreid's tables and epoch lines go here
    with host_output_to(log), Heartbeat('act: source-only training', log=log):
        src = run(cfg)
    weights = osp.join(src_dir, 'model', f'model.pth.tar-{cfg.train.max_epoch}')
    t_src = time.time() - t0

    opts = ['data.root', a.data_root, 'data.save_dir', osp.join(a.work_dir, 'act'),
            'model.load_weights', weights]
    if a.rounds:
        opts += ['act.num_rounds', str(a.rounds)]
    if a.epochs:
        opts += ['act.epochs', str(a.epochs)]
    log = osp.join(a.work_dir, 'act.log')
    with host_output_to(log), Heartbeat('act: rounds of clustering + co-teaching', log=log):
        act = run(load_config(ACT_CFG, opts))
    hist = act.round_history
    n_ids = len({it[1] for it in act.target_items})
    for h in hist:
        h['num_ids'] = n_ids
    png = osp.join(a.work_dir, 'act_rounds.png')
    plot(hist, png)

    bn = src.results[TARGET]
    print()
    print(f'ACT demo: synth-ped style 0 (labelled, {len(act.source_items)} images) -> style 1 '
          f'(unlabelled, {len(act.target_items)} images of {n_ids} hidden identities)')
    print(f'source-only network on the target, its BNNeck feature: mAP {100 * bn["mAP"]:.1f}  '
          f'Rank-1 {100 * bn["rank1"]:.1f}')
    print(f'{"":>16} {"clusters":>8} {"outliers":>8} {"purity in":>9} {"purity all":>10} '
          f'{"NMI":>6} {"mAP":>6} {"Rank-1":>6}')
    for h in hist:
        name = 'direct transfer' if h['round'] < 0 else f'ACT round {h["round"] + 1}'
        m, r1 = h.get(f'mAP_{TARGET}'), h.get(f'rank1_{TARGET}')
        cols = ('' if h['round'] < 0 else
                f'{h["num_clusters"]:8d} {h["outlier_frac"]:8.1%} {h["purity_inliers"]:9.3f} '
                f'{h["purity_all"]:10.3f} {h["nmi_all"]:6.3f}')
        cols = cols or ' ' * 45
        score = f'{100 * m:6.1f} {100 * r1:6.1f}' if m is not None else ''
        print(f'{name:>16} {cols} {score}')
    d = hist[0] if hist[0]['round'] < 0 else None
    last = hist[-1]
    if d is not None:
        print(f'target mAP / Rank-1: direct transfer {100 * d[f"mAP_{TARGET}"]:.1f} / '
              f'{100 * d[f"rank1_{TARGET}"]:.1f} -> ACT {100 * last[f"mAP_{TARGET}"]:.1f} / '
              f'{100 * last[f"rank1_{TARGET}"]:.1f}')
    print(f'plot: {png}  (source-only {t_src:.0f}s, total {time.time() - t0:.0f}s)')


if __name__ == '__main__':
    main()
