#!/usr/bin/env python
"""Benchmark: ACT's k-reciprocal Jaccard distance vs torchreid's ``re_ranking``.

    python tools/bench/reid_cluster.py [--n 4000] [--n-large 12936] [--device cpu|cuda]

Inputs: clustered, L2-normalised 256-d features (about 17 images per identity, as in the
Market-1501 training set) and their Euclidean distance matrix (float32, symmetric, zero
diagonal); both implementations get that same matrix, k1 = 20, k2 = 6, lambda = 0.

torchreid's ``re_ranking(q_g, q_q, g_g)`` returns the query x gallery block of the Jaccard
distance over the union of query and gallery; with the N images split into halves A and B it is
called twice (A x B and B x A) to produce the off-diagonal blocks, and it cannot give the
diagonal blocks (it would need more calls). Ours computes the whole (N, N) matrix in one call.
The script checks that the two agree within 1e-4 on both blocks and prints the time ratio
(torchreid's two calls vs one call of ours; the time of one torchreid call is printed too).

Then it times ours on N = 12,936 (the Market-1501 training set size) from features, as ACT runs
it, and prints its peak memory: on CUDA ``max_memory_allocated``; on CPU the growth of the
process' resident set from before the call to its peak (Linux ``/proc/self/status``), measured
in a fresh subprocess. The (N, N) float32
result itself is printed for comparison.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from reid_ext.core.jaccard import k_reciprocal_jaccard  # noqa: E402


def make_features(n: int, dim: int = 256, per_id: int = 17, noise: float = 0.9, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = max(1, n // per_id)
    centres = torch.randn(ids, dim, generator=g)
    labels = torch.randint(ids, (n,), generator=g)
    return F.normalize(centres[labels] + noise * torch.randn(n, dim, generator=g), dim=1)


def euclidean(x: torch.Tensor) -> torch.Tensor:
    sq = x.pow(2).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * x @ x.t()).clamp_(min=0).sqrt_()
    d = (d + d.t()) / 2
    d.fill_diagonal_(0)
    return d


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _rss_kib(field: str) -> int:
    """``VmRSS`` (current) or ``VmHWM`` (peak) resident set of this process in KiB (Linux)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'/proc/self/status has no {field}')


def _large_run(n: int, device: str) -> dict:
    """Time + peak memory of ours on N samples from features (run in a fresh process on CPU)."""
    dev = torch.device(device)
    x = make_features(n).to(dev)
    k_reciprocal_jaccard(x[:256], 20, 6)  # warm-up (allocator, kernels)
    _sync(dev)
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        base = _rss_kib('VmRSS') * 1024  # current, not the import-time peak
    t = time.perf_counter()
    out = k_reciprocal_jaccard(x, 20, 6)
    _sync(dev)
    dt = time.perf_counter() - t
    if dev.type == 'cuda':
        peak = torch.cuda.max_memory_allocated(dev) - base
    else:
        peak = _rss_kib('VmHWM') * 1024 - base
    return dict(n=n, seconds=dt, peak_bytes=int(peak), result_bytes=out.numel() * 4,
                frac_lt1=float((out < 1).float().mean()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n', type=int, default=4000)
    p.add_argument('--n-large', type=int, default=12936, help='0 skips the large run')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--repeat', type=int, default=3, help='timed runs of ours (best)')
    p.add_argument('--large-child', type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.large_child:
        print(json.dumps(_large_run(a.large_child, a.device)))
        return
    import torchreid

    dev = torch.device(a.device)
    x = make_features(a.n)
    dist = euclidean(x)
    print(f'N={a.n}, 256-d L2-normalised features, k1=20 k2=6, device {dev}, '
          f'torch threads {torch.get_num_threads()}')
    half = a.n // 2
    A, B = np.arange(half), np.arange(half, a.n)
    d = dist.numpy()
    ref_blocks, t_calls = [], []
    for q, g in ((A, B), (B, A)):
        t = time.perf_counter()
        ref_blocks.append(torchreid.utils.re_ranking(d[np.ix_(q, g)], d[np.ix_(q, q)],
                                                     d[np.ix_(g, g)], k1=20, k2=6,
                                                     lambda_value=0.0))
        t_calls.append(time.perf_counter() - t)
    t_ref = sum(t_calls)
    dist_dev = dist.to(dev)
    times = []
    for _ in range(max(1, a.repeat)):
        _sync(dev)
        t = time.perf_counter()
        ours = k_reciprocal_jaccard(dist_dev, 20, 6, precomputed=True)
        _sync(dev)
        times.append(time.perf_counter() - t)
    t_ours = min(times)
    ours = ours.cpu().numpy()
    diff = max(np.abs(ours[np.ix_(A, B)] - ref_blocks[0]).max(),
               np.abs(ours[np.ix_(B, A)] - ref_blocks[1]).max())
    t = time.perf_counter()
    k_reciprocal_jaccard(x.to(dev), 20, 6)
    _sync(dev)
    t_feat = time.perf_counter() - t
    print(f'torchreid re_ranking: 2 calls {t_ref:.2f} s ({t_calls[0]:.2f} + {t_calls[1]:.2f}), '
          f'each the {half} x {a.n - half} block of one half vs the other')
    print(f'ours (same distance matrix, whole {a.n} x {a.n}, best of {len(times)}): {t_ours:.3f} s;'
          f' from the features: {t_feat:.3f} s')
    print(f'max |difference| on the {2 * half * (a.n - half)} compared entries: {diff:.2e} '
          f'(pairs closer than 1: {(ref_blocks[0] < 1).mean():.2%})')
    if not diff <= 1e-4:
        raise SystemExit('Jaccard distances differ from torchreid re_ranking by more than 1e-4')
    if a.n_large:
        if dev.type == 'cuda':
            r = _large_run(a.n_large, a.device)
        else:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), '--device', a.device,
                                  '--large-child', str(a.n_large)], check=True,
                                 capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
        peak = 'GPU max_memory_allocated' if dev.type == 'cuda' else 'peak RSS growth'
        print(f'ours at N={r["n"]} from features: {r["seconds"]:.2f} s, {peak} '
              f'{r["peak_bytes"] / 2 ** 20:.0f} MiB (the N x N float32 result alone: '
              f'{r["result_bytes"] / 2 ** 20:.0f} MiB)')
    print(f'ours vs one torchreid call: {t_calls[0] / t_ours:.1f}x')
    print(f'jaccard speedup vs torchreid re_ranking at N={a.n}: {t_ref / t_ours:.1f}')


if __name__ == '__main__':
    main()
