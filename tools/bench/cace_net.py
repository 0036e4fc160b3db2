#!/usr/bin/env python
"""Benchmark: CACE-Net training step vs the same backbone with individual losses only.

    python tools/bench/cace_net.py [--backbone resnet50] [--batch 16] [--height 384 --width 128]
                                   [--iters 3] [--device cpu|cuda] [--topk 100]

Both steps are :class:`reid_ext.engines.cace_engine.CACEEngine.forward_backward` on the same
network and batch (P x K = 4 x 4 identities/images): CACE-Net (all B² ordered pairs, four losses)
and the baseline (``pair_branch=False``: ID + triplet on the individual features). The median
of ``--iters`` timed steps after one warm-up step is compared; baseline and CACE-Net steps
alternate so that load changes on a shared machine hit both alike. Then the opt-in re-scoring is
timed: ``--num-query`` queries, each re-scoring its top ``--topk`` of a ``--num-gallery`` gallery
of random feature maps of the backbone's shape (eval mode, batched). Last line:
``cace train step / baseline step time ratio: <x>`` (goal <= 2.0 on the paper setting).
"""
import argparse
import copy
import statistics
import time
from types import SimpleNamespace

import numpy as np
import torch


def _engine(model, pair_branch, device, **kw):
    from reid_ext.engines.cace_engine import CACEEngine
    dm = SimpleNamespace(train_loader=None, test_loader={}, num_train_pids=model.classifier.out_features)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    eng = CACEEngine(dm, model, opt, None, use_gpu=device == 'cuda', pair_branch=pair_branch, **kw)
    eng.configure()
    return eng


def _time_steps(engines, data, iters, device):
    """Median step time of each engine; the engines' steps alternate (base, cace, base, ...), so
    a change of the machine's load during the run hits both alike. First round = warm-up."""
    times = [[] for _ in engines]
    for eng in engines:
        eng.set_model_mode('train')
    for k in range(iters + 1):
        for eng, ts in zip(engines, times):
            if device == 'cuda':
                torch.cuda.synchronize()
            t = time.perf_counter()
            eng.forward_backward(data)
            if device == 'cuda':
                torch.cuda.synchronize()
            if k:
                ts.append(time.perf_counter() - t)
    return [statistics.median(ts) for ts in times]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--backbone', default='resnet50', help='resnet50 (paper) or tiny')
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--height', type=int, default=384)
    p.add_argument('--width', type=int, default=128)
    p.add_argument('--embed-dim', type=int, default=768)
    p.add_argument('--iters', type=int, default=3)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--topk', type=int, default=100)
    p.add_argument('--num-query', type=int, default=4)
    p.add_argument('--num-gallery', type=int, default=200)
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    if a.batch % 4:
        raise SystemExit(f'--batch must be a multiple of 4 (4 images per identity), got {a.batch}')
    from reid_ext.models.cace_net import CACENet
    torch.manual_seed(a.seed)
    num_ids = 751
    net = CACENet(num_ids, backbone=a.backbone, non_local=3 if a.backbone != 'tiny' else 1,
                  embed_dim=a.embed_dim).to(a.device)
    cace = _engine(net, True, a.device)
    base = _engine(copy.deepcopy(net), False, a.device)
    imgs = torch.randn(a.batch, 3, a.height, a.width, device=a.device)
    pids = torch.arange(a.batch // 4).repeat_interleave(4).to(a.device)
    data = {'img': imgs, 'pid': pids}
    print(f'device {a.device}, backbone {a.backbone}, {a.batch} images {a.height}x{a.width}, '
          f'{a.batch ** 2} pairs, {a.iters} timed steps each (median, alternating) after 1 '
          f'warm-up')
    t_base, t_cace = _time_steps([base, cace], data, a.iters, a.device)
    print(f'baseline step (ID + triplet, individual features): {t_base * 1e3:.1f} ms')
    print(f'cace step (B^2 pairs, four losses):               {t_cace * 1e3:.1f} ms')

    # re-scoring of the top-k gallery per query on random maps of the backbone's shape
    cace.set_model_mode('eval')
    with torch.no_grad():
        shape = net.backbone(imgs[:1]).shape[1:]
    rng = torch.Generator().manual_seed(a.seed)
    q = {'feats': torch.randn(a.num_query, a.embed_dim, generator=rng),
         'maps': torch.rand(a.num_query, *shape, generator=rng).half(),
         'pids': np.arange(a.num_query), 'camids': np.zeros(a.num_query, np.int64)}
    g = {'feats': torch.randn(a.num_gallery, a.embed_dim, generator=rng),
         'maps': torch.rand(a.num_gallery, *shape, generator=rng).half(),
         'pids': np.arange(a.num_gallery) % max(1, a.num_query),
         'camids': np.ones(a.num_gallery, np.int64)}
    cace.rescore_topk, cace.rescore_pairs = a.topk, a.topk  # one query per batched call
    cace.compute_distance(q, g, normalize_feature=True)
    print(f're-scoring time per query at k={a.topk}: {cace.rescore_seconds_per_query * 1e3:.1f} ms '
          f'({a.num_query} queries, gallery {a.num_gallery}, maps {tuple(shape)})')
    print(f'cace train step / baseline step time ratio: {t_cace / t_base:.2f}')


if __name__ == '__main__':
    main()
