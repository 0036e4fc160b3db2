#!/usr/bin/env python
"""Demo of DSM / TBE video pretraining (short form of tools/experiments/scene_bias.py).

Pretrains moco, dsm and tbe briefly on small scene-bias-video datasets (8-frame clips at 32 px,
tiny ResNet3d; one dataset per seed, data seed = seed), probes each frozen backbone (CV-chosen
L2) and prints the decorrelated test accuracy as mean +- sample std [95% interval] over the
seeds with the paired differences against moco - the short form of
tools/experiments/scene_bias.py (whose full form decides the papers' claim). Also writes
``disturbances.png``: one clip as anchor, DSM TPS warp, DSM push warp, background erasing (BE)
and the shifted intra-video negative window.

    python tools/demos/video_ssl.py [--work-dir work_dirs/demo/video_ssl] [--epochs 3] [--seeds 0,1,2]
"""
import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]


def save_disturbances(data_root: Path, out: Path) -> None:
    """Picture of the disturbance ops on one training clip (rows: op, columns: frames)."""
    import cv2
    import decord

    from mm_ext.core.video import (background_erasing, push_warp, sample_anchor_and_negative,
                                   tps_warp, window_indices)
    name = (data_root / 'train_list_videos.txt').read_text().split()[0]
    vr = decord.VideoReader(str(data_root / 'videos' / name))
    n, t = len(vr), 8
    s, s2 = sample_anchor_and_negative(n, t, 1, 2, rng=np.random.default_rng(0))
    frames = vr.get_batch(list(np.concatenate([window_indices(s, t, 1, n),
                                               window_indices(s2, t, 1, n)]))).asnumpy()
    clip = torch.from_numpy(frames).float().permute(3, 0, 1, 2)[None]  # (1, 3, 2T, H, W)
    anchor, negative = clip[:, :, :t], clip[:, :, t:]
    g = torch.Generator().manual_seed(0)
    rows = [anchor, tps_warp(anchor, jitter=0.1, generator=g)[0],
            push_warp(anchor, ref_size=112, generator=g)[0],
            background_erasing(anchor, lam=torch.tensor(0.3), generator=g)[0], negative]
    img = torch.cat([torch.cat(list(r[0].permute(1, 2, 3, 0)), 1) for r in rows], 0)
    img = img.clamp(0, 255).byte().numpy()[..., ::-1]  # RGB -> BGR
    img = cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out, suffix='.png')
    os.close(fd)
    cv2.imwrite(tmp, img)
    os.replace(tmp, out / 'disturbances.png')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--work-dir', default=str(REPO / 'work_dirs' / 'demo' / 'video_ssl'))
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--seeds', default='0,1,2')
    a = p.parse_args(argv)
    spec = importlib.util.spec_from_file_location('scene_bias_experiment',
                                                  REPO / 'tools' / 'experiments' / 'scene_bias.py')
    exp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exp)
    from mm_ext.datagen import make_dataset
    data_root = make_dataset('scene-bias-video')
    save_disturbances(data_root, Path(a.work_dir))
    from mm_ext.engine.progress import Heartbeat  # a progress line while the runs go on
    with Heartbeat(f'video_ssl: moco, dsm, tbe x seeds {a.seeds}, {a.epochs} epochs + probes'):
        exp.main(['--epochs', str(a.epochs), '--work-dir', a.work_dir, '--seeds', a.seeds,
                  '--methods', 'moco,dsm,tbe', '--threads', '1', '--folds', '3', '--jobs', '2',
                  '--data-opt', 'train_per_class=24', '--data-opt', 'val_per_class=8',
                  '--data-opt', 'probe_per_class=16', '--data-opt', 'test_per_class=50'])
    print(f'picture of the disturbance ops: {Path(a.work_dir) / "disturbances.png"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
