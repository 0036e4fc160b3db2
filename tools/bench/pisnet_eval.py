#!/usr/bin/env python
"""Benchmark: PISNet's top-100 re-scoring of one query vs plain feature extraction of the same crops.

    python tools/bench/pisnet_eval.py [--backbone resnet50] [--height 256 --width 128] [--repeat 3]

Both sides run in the same process on the same 100 random gallery crops (batch 100, eval mode,
no data loader): *plain* = the baseline's feature extraction for the 100 crops (backbone + GAP +
BNNeck, what a non-conditioned model pays per gallery crop); *re-scoring* = what the PISNet
engine pays per query for its 100 candidates (``rescore_candidates``: QGAB on the gallery maps
cached once per gallery + GAP + BNNeck + distances). The one-off cost of caching the gallery maps
equals one plain extraction of the gallery and is shared by all queries. For reference the
release's way (a full Siamese forward of every (query, crop) pair) is also timed (``--no-pairs``
skips it). Median of
``--repeat`` runs after one warm-up. The last line is the ratio re-scoring / plain.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from reid_ext.engines.pisnet_engine import rescore_candidates  # noqa: E402
from reid_ext.models.pisnet import PISNet  # noqa: E402


def timed(fn, repeat):
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--backbone', default='resnet50', help='resnet50 (paper) or tiny')
    ap.add_argument('--height', type=int, default=256)
    ap.add_argument('--width', type=int, default=128)
    ap.add_argument('--candidates', type=int, default=100)
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--no-pairs', action='store_true',
                    help='skip the per-pair Siamese reference timing (two plain extractions long)')
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    net = PISNet(100, backbone=args.backbone, last_stride=1).to(args.device).eval()
    crops = torch.randn(args.candidates, 3, args.height, args.width, device=args.device)
    query = torch.randn(1, 3, args.height, args.width, device=args.device)
    with torch.no_grad():
        g_maps = net.maps(crops)
        q_maps = net.maps(query)[0]
        q_feat = torch.nn.functional.normalize(net(query), dim=1)[0]

        def plain():
            return net(crops)

        def rescore():
            return rescore_candidates(net, q_maps, q_feat, g_maps, args.candidates)

        def release_pairs():  # full Siamese forward per pair (query + crop), batched
            m = net.maps(torch.cat([crops, query.expand(len(crops), -1, -1, -1)]))
            return net.guided_features(m[:len(crops)], m[len(crops):])

        t_plain = timed(plain, args.repeat)
        t_res = timed(rescore, args.repeat)
        t_pair = None if args.no_pairs else timed(release_pairs, args.repeat)
    print(f'device {args.device}, backbone {args.backbone}, {args.height}x{args.width}, '
          f'{args.candidates} candidates, median of {args.repeat}')
    print(f'plain feature extraction of {args.candidates} crops: {t_plain * 1e3:.1f} ms')
    print(f'pisnet re-scoring of {args.candidates} candidates (cached gallery maps): '
          f'{t_res * 1e3:.1f} ms')
    if t_pair is not None:
        print(f'per-pair Siamese forward (query + crop each pair, no cache): {t_pair * 1e3:.1f} ms '
              f'(ratio {t_pair / t_plain:.2f})')
    print(f'pisnet top-100 rescoring / plain feature extraction time ratio: {t_res / t_plain:.3f}')


if __name__ == '__main__':
    main()
