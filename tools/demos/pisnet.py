#!/usr/bin/env python
"""Demo: PISNet vs its strong baseline on synth-pi, under both evaluation protocols (CPU).

    python tools/demos/pisnet.py [--work-dir work_dirs/demo/pisnet] [--epochs1 12 --epochs2 6]

Data: ``synth-pi`` (``python tools/make_data.py synth-pi``; synth-ped people composited into
overlapping two/three-person gallery crops, PI-ReID layout) in ``data/pisnet-synth/``, 64 x 32.

1. Stage 1: the BoT strong baseline (tiny BNNeck network) on the single-person training crops
   (configs/reid/pisnet/bot_tiny_synth-pi_stage1.yaml).
2. The baseline is evaluated by the PISNet engine without re-scoring (pre-selection ranking).
3. Stage 2: PISNet starts from it and trains only the query-guided attention blocks
   (configs/reid/pisnet/pisnet_tiny_synth-pi_stage2.yaml).

Printed: a table of mAP / Rank-1 under the official PI protocol (top-100 pre-selection, AP over
the positives found, skip rules) and the full-gallery protocol. ``<work-dir>/attention.png``
shows the query-guided attention on a few two-person test crops for the query of each person.
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
DATA_OPTS = dict(num_train_ids=40, num_test_ids=50, height=64, width=32)


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
    ap.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs/demo/pisnet'))
    ap.add_argument('--epochs1', type=int, default=12)
    ap.add_argument('--epochs2', type=int, default=6)
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    data_root = osp.join(REPO, 'data', 'pisnet-synth')
    make_dataset('synth-pi', root=data_root, seed=args.seed, **DATA_OPTS)
    common = ['data.root', data_root, 'data.height', '64', 'data.width', '32',
              'train.seed', str(args.seed)]
    s1_dir = osp.join(args.work_dir, 'stage1')
    cfg1 = load_config(STAGE1, common + ['data.save_dir', s1_dir, 'train.max_epoch',
                                         str(args.epochs1)])
    log = osp.join(args.work_dir, 'pisnet.log')
    with host_output_to(log), Heartbeat('pisnet stage 1 (BoT)', log=log):
        run(cfg1)
    weights = osp.join(s1_dir, 'model', f'model.pth.tar-{args.epochs1}')
    s2 = common + ['model.load_weights', weights, 'train.stepsize', f'[{max(1, args.epochs2 - 2)}]']
    with host_output_to(log), Heartbeat('pisnet baseline evaluation', log=log):
        base = run(load_config(STAGE2, s2 + ['data.save_dir', osp.join(args.work_dir, 'baseline'),
                                             'test.evaluate', 'True', 'pisnet.rescore', 'False']))
    with host_output_to(log), Heartbeat('pisnet stage 2 (attention blocks)', log=log):
        pis = run(load_config(STAGE2, s2 + ['data.save_dir', osp.join(args.work_dir, 'stage2'),
                                            'train.max_epoch', str(args.epochs2)]))
    rows = [('strong baseline (stage 1)', base.results['synth_pi']),
            ('PISNet (stage 2)', pis.results['synth_pi'])]
    print(f'synth-pi test: {rows[0][1]["num_valid"]} queries kept by the PI protocol')
    print(f'{"method":28s} {"PI mAP":>8s} {"PI R1":>8s} {"full mAP":>9s} {"full R1":>8s}')
    for name, r in rows:
        print(f'{name:28s} {r["mAP"]:8.1%} {r["rank1"]:8.1%} {r["full_mAP"]:9.1%} '
              f'{r["full_rank1"]:8.1%}')
    pic = osp.join(args.work_dir, 'attention.png')
    attention_picture(pis, pic)
    print(f'query-guided attention on two-person crops: {pic}')


if __name__ == '__main__':
    main()
