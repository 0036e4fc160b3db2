#!/usr/bin/env python
"""Demo: PISNet vs its strong baseline on synth-pi, under both evaluation protocols (CPU).

    python tools/demos/pisnet.py [--work-dir work_dirs/demo/pisnet] [--epochs1 12 --epochs2 6]
    python tools/demos/pisnet.py --long     # the longer run (more identities, 40 + 20 epochs)

Data: ``synth-pi`` (``python tools/make_data.py synth-pi``; synth-ped people composited into
overlapping two/three-person gallery crops, PI-ReID layout) in ``data/pisnet-synth/``, 64 x 32.

1. Stage 1: the BoT strong baseline (tiny BNNeck network) on the single-person training crops
   (configs/reid/pisnet/bot_tiny_synth-pi_stage1.yaml).
2. The baseline is evaluated by the PISNet engine without re-scoring (pre-selection ranking).
3. Stage 2: PISNet starts from it and trains only the query-guided attention blocks
   (configs/reid/pisnet/pisnet_tiny_synth-pi_stage2.yaml).

Printed: a table of mAP / Rank-1 under the official PI protocol (top-100 pre-selection, AP over
the positives found, skip rules) and the full-gallery protocol (the re-scored top-100 followed
by the rest in pre-selection order; a third row re-scores every gallery crop), and the stage-2
loss at its first and last epoch. ``<work-dir>/attention.png`` shows the query-guided attention
on a few two-person test crops for the query of each person.

``--long``: 120 training identities, stage 1 40 epochs, stage 2 20 epochs (about 3 CPU-minutes
of compute; data in ``data/pisnet-synth-120-50/``).
"""
import argparse
import os
import os.path as osp

import reid_ext  # noqa: F401  (registers models and datasets)
from mm_ext.datagen import make_dataset
from mm_ext.engine.progress import Heartbeat, host_output_to
from reid_ext.apis import run
from reid_ext.config import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STAGE1 = osp.join(REPO, 'configs/reid/pisnet/bot_tiny_synth-pi_stage1.yaml')
STAGE2 = osp.join(REPO, 'configs/reid/pisnet/pisnet_tiny_synth-pi_stage2.yaml')
DATA_OPTS = dict(num_train_ids=40, num_test_ids=50, height=64, width=32, composite='masks')
#: ``--long``: more training identities and the spec's schedule shapes at 40 + 20 epochs
LONG = dict(train_ids=120, test_ids=50, epochs1=40, epochs2=20)


def schedules(epochs1, epochs2):
    """LR schedule options: stage 1 in the quick config's shape (x0.1 at 2/3 and 5/6 of the
    epochs after 1/6 warm-up: [8, 10] / 2 for 12), stage 2 in the spec's (50 epochs, x0.1 at
    [20, 40] after 10 warm-up epochs: 0.4, 0.8, 0.2 of the epochs)."""
    s1 = ['train.stepsize', f'[{round(epochs1 * 2 / 3)}, {round(epochs1 * 5 / 6)}]',
          'train.warmup_epochs', str(max(1, round(epochs1 / 6)))]
    s2 = ['train.stepsize', f'[{max(1, round(epochs2 * 0.4))}, {max(2, round(epochs2 * 0.8))}]',
          'train.warmup_epochs', str(max(1, round(epochs2 * 0.2)))]
    return s1, s2


def attention_picture(engine, path, n=4):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch
    import torch.nn.functional as F
    from PIL import Image
    net = engine.model.eval()
    dm = engine.datamanager
    gal = dm.test_loader['synth_pi']['gallery'].dataset
    qry = dm.test_loader['synth_pi']['query'].dataset
    by_pid = {}
    for p, pid, *_ in qry.query:
        by_pid.setdefault(pid, p)
    crops = [(p, gal.gallery_pids[p]) for p, *_ in gal.gallery
             if len(gal.gallery_pids[p]) == 2 and all(x in by_pid for x in gal.gallery_pids[p])][:n]
    tf = dm.transform_te
    fig, ax = plt.subplots(len(crops), 3, figsize=(6, 2.6 * len(crops)), squeeze=False)
    with torch.no_grad():
        for r, (p, pids) in enumerate(crops):
            img = Image.open(p).convert('RGB')
            g = net.maps(tf(img)[None])
            ax[r, 0].imshow(img)
            ax[r, 0].set_title(f'crop {pids}', fontsize=8)
            for c, pid in enumerate(pids):
                q = net.maps(tf(Image.open(by_pid[pid]).convert('RGB'))[None])
                a = net.attention(g, q)
                a = F.interpolate(a, size=img.size[::-1], mode='bilinear')[0, 0].numpy()
                ax[r, c + 1].imshow(img)
                ax[r, c + 1].imshow(a, alpha=0.55, cmap='jet')
                ax[r, c + 1].set_title(f'query pid {pid}', fontsize=8)
    for a in ax.ravel():
        a.axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--work-dir', default=None,
                    help='default work_dirs/demo/pisnet (work_dirs/demo/pisnet_long with --long)')
    ap.add_argument('--long', action='store_true', help=f'the longer run: {LONG}')
    ap.add_argument('--epochs1', type=int, default=None, help='stage-1 epochs (12; --long 40)')
    ap.add_argument('--epochs2', type=int, default=None, help='stage-2 epochs (6; --long 20)')
    ap.add_argument('--train-ids', type=int, default=None, help='training identities (40; --long 120)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--reuse-stage1', action='store_true',
                    help='keep the stage-1 weights already in <work-dir>/stage1 (same settings)')
    args = ap.parse_args(argv)
    preset = LONG if args.long else dict(train_ids=DATA_OPTS['num_train_ids'],
                                         test_ids=DATA_OPTS['num_test_ids'], epochs1=12, epochs2=6)
    e1 = args.epochs1 if args.epochs1 is not None else preset['epochs1']
    e2 = args.epochs2 if args.epochs2 is not None else preset['epochs2']
    n_train = args.train_ids if args.train_ids is not None else preset['train_ids']
    work_dir = args.work_dir or osp.join(REPO, 'work_dirs/demo', 'pisnet_long' if args.long else 'pisnet')
    os.makedirs(work_dir, exist_ok=True)
    opts = dict(DATA_OPTS, num_train_ids=n_train, num_test_ids=preset['test_ids'])
    data_root = osp.join(REPO, 'data', ('pisnet-synth' if opts == DATA_OPTS else
                                        f'pisnet-synth-{n_train}-{preset["test_ids"]}')
                         + (f'-s{args.seed}' if args.seed else ''))
    make_dataset('synth-pi', root=data_root, seed=args.seed, **opts)
    common = ['data.root', data_root, 'data.height', '64', 'data.width', '32',
              'train.seed', str(args.seed)]
    sched1, sched2 = schedules(e1, e2)
    s1_dir = osp.join(work_dir, 'stage1')
    cfg1 = load_config(STAGE1, common + sched1 + ['data.save_dir', s1_dir,
                                                  'train.max_epoch', str(e1)])
    log = osp.join(work_dir, 'pisnet.log')
    weights = osp.join(s1_dir, 'model', f'model.pth.tar-{e1}')
    if not (args.reuse_stage1 and osp.isfile(weights)):
        with host_output_to(log), Heartbeat('pisnet stage 1 (BoT)', log=log):
            run(cfg1)
    s2 = common + sched2 + ['model.load_weights', weights]
    with host_output_to(log), Heartbeat('pisnet baseline evaluation', log=log):
        base = run(load_config(STAGE2, s2 + ['data.save_dir', osp.join(work_dir, 'baseline'),
                                             'test.evaluate', 'True', 'pisnet.rescore', 'False']))
    with host_output_to(log), Heartbeat('pisnet stage 2 (attention blocks)', log=log):
        pis = run(load_config(STAGE2, s2 + ['data.save_dir', osp.join(work_dir, 'stage2'),
                                            'train.max_epoch', str(e2)]))
    h = pis.history
    print(f'synth-pi ({n_train} training ids, seed {args.seed}), stage 1 {e1} epochs, stage 2 {e2} '
          f'epochs; stage-2 loss {h[0]["loss_ce"] + h[0]["loss_tri"]:.3f} -> '
          f'{h[-1]["loss_ce"] + h[-1]["loss_tri"]:.3f} (CE + triplet), MPS {h[0]["loss_mps"]:.3f} -> '
          f'{h[-1]["loss_mps"]:.3f}')
    # the full-gallery protocol again with every gallery crop re-scored (not only the top-100)
    loaders = pis.datamanager.test_loader['synth_pi']
    q, g = pis.extract(loaders['query']), pis.extract(loaders['gallery'])
    pis.topk = 0
    with host_output_to(log):
        whole = pis.compute_metrics(pis.compute_distance(q, g), q, g)
    rows = [('strong baseline (stage 1)', base.results['synth_pi']),
            ('PISNet (stage 2)', pis.results['synth_pi']),
            ('PISNet, whole gallery re-scored', dict(whole, mAP=None, rank1=None))]
    print(f'synth-pi test: {rows[0][1]["num_valid"]} queries kept by the PI protocol')
    print(f'{"method":32s} {"PI mAP":>8s} {"PI R1":>8s} {"full mAP":>9s} {"full R1":>8s}')
    pct = lambda x, w: f'{x:{w}.1%}' if x is not None else f'{"-":>{w}s}'  # noqa: E731
    for name, r in rows:
        print(f'{name:32s} {pct(r["mAP"], 8)} {pct(r["rank1"], 8)} {pct(r["full_mAP"], 9)} '
              f'{pct(r["full_rank1"], 8)}')
    pic = osp.join(work_dir, 'attention.png')
    attention_picture(pis, pic)
    print(f'query-guided attention on two-person crops: {pic}')


if __name__ == '__main__':
    main()
