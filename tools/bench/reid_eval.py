#!/usr/bin/env python
"""Benchmark: reid_ext's vectorised CMC/mAP vs torchreid's ``evaluate_rank`` at Market-1501 size.

    python tools/bench/reid_eval.py [--num-query 3368 --num-gallery 15913] [--repeat 3]

A real-shaped distance matrix (clustered 128-d features of 750 identities, 6 cameras, 2,798
distractors, squared Euclidean as torchreid's ``compute_distance_matrix``, float32) is evaluated
by both; torchreid runs with its default ``use_cython=True``, which falls back to the Python
path when the Cython extension is not compiled (always the case for the PyPI 0.2.5 sdist). The
script checks that both give the same CMC and mAP and prints the time ratio.
"""
import argparse
import time

import numpy as np
import torch


def make_inputs(nq: int, ng: int, nid: int = 750, num_distractors: int = 2798, seed: int = 0):
    rng = np.random.RandomState(seed)
    nd = min(num_distractors, ng // 5)
    gp = np.concatenate([rng.randint(1, nid + 1, ng - nd), np.zeros(nd, np.int64)])
    qp = rng.randint(1, nid + 1, nq)
    qc, gc = rng.randint(0, 6, nq), rng.randint(0, 6, ng)
    centres = rng.randn(nid + 1, 128).astype(np.float32)
    qf = torch.from_numpy(centres[qp] + 1.4 * rng.randn(nq, 128).astype(np.float32))
    gf = torch.from_numpy(centres[gp] + 1.4 * rng.randn(ng, 128).astype(np.float32))
    return qf, gf, qp, gp, qc, gc


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--num-query', type=int, default=3368)
    p.add_argument('--num-gallery', type=int, default=15913)
    p.add_argument('--repeat', type=int, default=3, help='timed runs of the fast path (best)')
    a = p.parse_args(argv)
    import torchreid

    from reid_ext.core import evaluate_rank_fast
    rank_mod = __import__('importlib').import_module('torchreid.reid.metrics.rank')
    path = 'Cython (evaluate_cy)' if rank_mod.IS_CYTHON_AVAI else 'Python (eval_market1501)'

    qf, gf, qp, gp, qc, gc = make_inputs(a.num_query, a.num_gallery)
    distmat = torchreid.metrics.compute_distance_matrix(qf, gf, 'euclidean').numpy()
    print(f'distmat {distmat.shape[0]} x {distmat.shape[1]} {distmat.dtype}, '
          f'torch threads {torch.get_num_threads()}')

    times = []
    for _ in range(max(1, a.repeat)):
        t = time.perf_counter()
        cmc, mAP = evaluate_rank_fast(distmat, qp, gp, qc, gc)
        times.append(time.perf_counter() - t)
    t_fast = min(times)
    t = time.perf_counter()
    cmc_ref, map_ref = torchreid.metrics.evaluate_rank(distmat, qp, gp, qc, gc)
    t_ref = time.perf_counter() - t
    same_cmc = bool(np.array_equal(cmc, cmc_ref))
    print(f'torchreid evaluate_rank [{path}]: {t_ref:.2f} s   mAP {map_ref:.6f}  R1 {cmc_ref[0]:.4f}')
    print(f'reid_ext evaluate_rank_fast (best of {len(times)}): {t_fast:.3f} s   mAP {mAP:.6f}  '
          f'R1 {cmc[0]:.4f}')
    print(f'identical CMC: {same_cmc}, |mAP difference|: {abs(mAP - map_ref):.2e}')
    if not same_cmc or abs(mAP - map_ref) > 1e-9:
        raise SystemExit('results differ from torchreid')
    print(f'reid eval speedup vs torchreid at market size: {t_ref / t_fast:.1f}')


if __name__ == '__main__':
    main()
