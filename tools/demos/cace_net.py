#!/usr/bin/env python
"""Demo: CACE-Net (Siamese-GCN) on synth-ped (CPU, about 2 minutes).

    python tools/demos/cace_net.py [--work-dir work_dirs/demo/cace_net] [--epochs 6] [--topk 20]

Data: synth-ped in ``data/cace-synth/synth-ped`` (32 training and 24 test identities, 64 x 32).
Two trainings of the same tiny network, data, sampler (4 x 4 images), schedule and seed:

1. individual losses only (ID + batch-hard triplet): configs/reid/cace_net/
   cace_net_tiny_synth-ped_baseline.yaml;
2. CACE-Net (all 256 ordered pairs per batch, + mixed-up ID + pairwise triplet on D_ij):
   configs/reid/cace_net/cace_net_tiny_synth-ped_quick.yaml, evaluated on the individual
   embedding and, in the same test, with the top-k of each query re-scored by D_qg.

Printed: mAP / Rank-1 of the three rows. Picture ``<work-dir>/cace_attention.png``: for a test
pair of the same identity (two cameras), a few nodes of the left image and the correspondence
attention A_nm each sends to the nodes of the right image.
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
CFG = osp.join(REPO, 'configs/reid/cace_net/cace_net_tiny_synth-ped_quick.yaml')
BASE_CFG = osp.join(REPO, 'configs/reid/cace_net/cace_net_tiny_synth-ped_baseline.yaml')
DATA_OPTS = dict(num_train_ids=32, num_test_ids=24, num_distractors=10, height=64, width=32)


def attention_picture(engine, path, num_nodes=4):
    """Correspondence attention of a few left-image nodes over the right image of a pair."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch

    from reid_ext.engines.base_engine import _unwrap
    net = _unwrap(engine.model).eval()
    ds = engine.datamanager.test_loader['synth_ped']['query'].dataset
    gal = engine.datamanager.test_loader['synth_ped']['gallery'].dataset
    img_q, pid_q, cam_q = ds[0]['img'], ds[0]['pid'], ds[0]['camid']
    match = next(k for k in range(len(gal)) if gal[k]['pid'] == pid_q and gal[k]['camid'] != cam_q)
    img_g = gal[match]['img']
    x = torch.stack([img_q, img_g])
    with torch.no_grad():
        maps = net.backbone(x)
        _, _, att = net.pair_features(maps, torch.tensor([0]), torch.tensor([1]),
                                      return_attention=True)
    h, w = maps.shape[2:]
    hw = h * w
    cross = att[0, :hw, hw:]  # left nodes -> right nodes
    # nodes down the middle column of the left image (head to legs)
    rows = torch.linspace(0, h - 1, num_nodes + 2)[1:-1].round().long().tolist()
    nodes = [r * w + w // 2 for r in rows]
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]

    def show(t):
        return (t * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()

    fig, ax = plt.subplots(1, num_nodes + 1, figsize=(2.0 * (num_nodes + 1), 3.4))
    ax[0].imshow(show(img_q))
    H, W = img_q.shape[1:]
    for k, n in enumerate(nodes):
        r, c = divmod(n, w)
        ax[0].add_patch(plt.Rectangle((c * W / w, r * H / h), W / w, H / h, fill=False,
                                      ec=f'C{k}', lw=2))
        ax[k + 1].imshow(show(img_g))
        heat = cross[n].reshape(h, w).numpy()
        ax[k + 1].imshow(heat, cmap='jet', alpha=0.5, extent=(0, W, H, 0),
                         interpolation='nearest')
        ax[k + 1].set_title(f'node {k + 1}', color=f'C{k}', fontsize=9)
    ax[0].set_title('query nodes', fontsize=9)
    for a in ax:
        a.axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'demo', 'cace_net'))
    p.add_argument('--data-root', default=osp.join(REPO, 'data', 'cace-synth'))
    p.add_argument('--epochs', type=int, default=6)
    p.add_argument('--topk', type=int, default=20, help='re-scored gallery entries per query')
    a = p.parse_args(argv)
    t0 = time.time()
    os.makedirs(a.work_dir, exist_ok=True)
    make_dataset('synth-ped', root=a.data_root, seed=0, **DATA_OPTS)
    common = ['data.root', a.data_root, 'train.max_epoch', str(a.epochs),
              'train.checkpoint_period', '0']
    rows = []
    for tag, cfg_path, extra in (('individual losses only', BASE_CFG, []),
                                 ('CACE-Net', CFG, ['cace.rescore_topk', str(a.topk)])):
        save = osp.join(a.work_dir, 'baseline' if cfg_path == BASE_CFG else 'cace_net')
        cfg = load_config(cfg_path, common + ['data.save_dir', save] + extra)
        log = save + '.log'
        with host_output_to(log), Heartbeat(f'cace_net demo: {tag}', log=log):
            eng = run(cfg)
        if cfg_path == BASE_CFG:
            rows.append((tag, eng.results['synth_ped']))
        else:
            rows.append((tag, eng.plain_results['synth_ped']))
            rows.append((f'CACE-Net + top-{a.topk} re-scoring', eng.results['synth_ped']))
            cace = eng
    png = osp.join(a.work_dir, 'cace_attention.png')
    attention_picture(cace, png)
    print()
    print(f'CACE-Net demo: synth-ped, tiny backbone, 64x32, {a.epochs} epochs, 16 images '
          f'(4 ids x 4) per batch, same seed for all rows')
    print(f'{"":>34} {"mAP":>6} {"Rank-1":>6}')
    for tag, r in rows:
        print(f'{tag:>34} {100 * r["mAP"]:6.1f} {100 * r["rank1"]:6.1f}')
    print(f're-scoring time per query (k={a.topk}): {1e3 * cace.rescore_seconds_per_query:.1f} ms')
    print(f'attention picture: {png}  (total {time.time() - t0:.0f}s)')


if __name__ == '__main__':
    main()
