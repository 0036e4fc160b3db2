#!/usr/bin/env python
"""Benchmark of DSM / TBE pretraining: step time vs the MoCo baseline, and disturbance-op throughput.

One full training step (disturbance, three encoder passes, InfoNCE / TCR,
backward, SGD step, momentum update, enqueue) is timed in each mode on the same
batch and backbone (BN-Inception I3D by default); modes are interleaved so that
load changes hit them equally, and the median is reported. The ops section
compares the vectorised push warp with a per-pixel Python loop (how the release
implements it) measured in the same run.

    python tools/bench/video_ssl.py                       # CPU-sized defaults
    python tools/bench/video_ssl.py --frames 16 --size 224 --batch 8 --device cuda

Last line: ``tbe/moco step time ratio: <x>``.
"""
import argparse
import copy
import math
import statistics
import time

import torch

from mm_ext.core.video import (BNInceptionI3D, ContrastiveConfig, ProjectionHead,
                               background_erasing, enqueue_wraparound, momentum_update,
                               push_warp, tps_warp, video_contrastive_loss)
from mm_ext.core.video.spatial_disturbance import random_push_params


class Encoder(torch.nn.Module):
    def __init__(self, backbone, channels, dim=128):
        super().__init__()
        self.backbone = backbone
        self.head = ProjectionHead(channels, dim)

    def forward(self, x):
        m = self.backbone(x)
        return m, self.head(m)


def _sync(dev):
    if dev.type == 'cuda':
        torch.cuda.synchronize()


def push_loop(img, params):
    """Per-pixel Python loop of the released push warp (nearest sampling, one frame (H, W))."""
    h, w = img.shape
    out = img.clone()
    for cx, cy, dx, dy, act in params.tolist():
        if not act:
            continue
        src = out.clone()
        norm = math.hypot(dx, dy)
        for y in range(h):
            for x in range(w):
                if abs(x - cx) < 3 * abs(dx) and abs(y - cy) < 3 * abs(dy):
                    hh = 0.5 / (3 * (math.hypot(x - cx - dx, y - cy - dy) / norm) ** 4 + 1)
                    sx = min(max(int(round(x - hh * dx)), 0), w - 1)
                    sy = min(max(int(round(y - hh * dy)), 0), h - 1)
                    out[y, x] = src[sy, sx]
    return out


def time_it(fn, dev, reps):
    ts = []
    for _ in range(reps):
        _sync(dev)
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--frames', type=int, default=8)
    p.add_argument('--size', type=int, default=64)
    p.add_argument('--width', type=float, default=1.0, help='I3D width ratio (1.0 = 1024-d)')
    p.add_argument('--queue', type=int, default=3569)
    p.add_argument('--iters', type=int, default=4, help='timed steps per mode')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--modes', default='moco,dsm,tbe')
    p.add_argument('--threads', type=int, default=1,
                   help='torch intra-op threads on CPU (0: torch default); 1 avoids OpenMP '
                   'oversubscription noise on a shared CPU. Defaults to 1.')
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    backbone = BNInceptionI3D(width_ratio=a.width)
    backbone.init_weights()
    enc_q = Encoder(backbone, backbone.out_channels).to(dev)
    enc_k = copy.deepcopy(enc_q)
    for prm in enc_k.parameters():
        prm.requires_grad_(False)
    opt = torch.optim.SGD(enc_q.parameters(), lr=0.003, momentum=0.9, weight_decay=1e-4)
    queue = torch.randn(a.queue, 128, device=dev)
    ptr = torch.zeros(1, dtype=torch.long, device=dev)
    views = torch.randn(a.batch, 3, 3, a.frames, a.size, a.size, device=dev)
    modes = a.modes.split(',')

    def step(mode):
        cfg = ContrastiveConfig(mode=mode)
        opt.zero_grad(set_to_none=True)
        losses, keys = video_contrastive_loss(views, enc_q, enc_k, queue.clone(), cfg, gen)
        sum(v for n, v in losses.items() if 'loss' in n).backward()
        opt.step()
        momentum_update(enc_k, enc_q, 0.999)
        if keys is not None:
            enqueue_wraparound(queue, ptr, keys)

    print(f'device: {dev}  I3D width {a.width} ({backbone.out_channels}-d)  batch {a.batch} x 3 '
          f'views x {a.frames} x {a.size}^2  K={a.queue}')
    for m in modes:  # warm-up
        step(m)
    times = {m: [] for m in modes}
    for _ in range(a.iters):
        for m in modes:
            times[m].append(time_it(lambda: step(m), dev, 1))
    med = {m: statistics.median(v) for m, v in times.items()}

    # disturbance ops on the anchor batch
    anchor = views[:, 0]
    n_clips = anchor.shape[0]
    reps = 5
    t_tps = time_it(lambda: tps_warp(anchor, generator=gen), dev, reps)
    t_push = time_it(lambda: push_warp(anchor, generator=gen), dev, reps)
    t_be = time_it(lambda: background_erasing(anchor, generator=gen), dev, reps)
    frame = anchor[0, 0, 0].cpu()
    prm = random_push_params(1, a.size, generator=gen)[0]
    t_loop_frame = time_it(lambda: push_loop(frame, prm), torch.device('cpu'), 1)
    n_frames = n_clips * anchor.shape[2]
    t_loop = t_loop_frame * n_frames * anchor.shape[1]  # the loop runs per frame and channel
    print(f'ops  tps_warp {n_clips / t_tps:9.1f} clips/s | push_warp {n_clips / t_push:9.1f} '
          f'clips/s | background_erasing {n_clips / t_be:9.1f} clips/s')
    print(f'ops  push warp, per-pixel Python loop (estimated from one frame): '
          f'{n_clips / t_loop:9.3f} clips/s -> vectorised is {t_loop / t_push:.0f}x faster')
    for m in modes:
        print(f'step {m:5s} {med[m] * 1000:9.1f} ms  ({med[m] / med["moco"]:.3f} x moco)')
    if 'dsm' in med:
        print(f'dsm/moco step time ratio: {med["dsm"] / med["moco"]:.3f}')
    print(f'tbe/moco step time ratio: {med["tbe"] / med["moco"]:.3f}')


if __name__ == '__main__':
    main()
