#!/usr/bin/env python
"""Benchmark: NOH-NMS vs greedy NMS (mmcv.ops.nms) vs the per-box reference loop.

``noh_nms`` is timed on its default CPU path (the compiled sequential kernel, see
``mm_ext.core.nms._ckernel``) and, in the ``vectorised`` column, on the vectorised numpy rounds
(its fallback, ``MM_EXT_NMS_KERNEL=0``; on CUDA the rounds are the only path). All run on the
same clustered pedestrian detections (a 1400 x 800 image, 10 detections per person, half of the people in overlapping pairs; see
``mm_ext.core.nms.testing``) at N = 100, 300, 1000, 3000, on the CPU and, when
present, on CUDA. Times are medians over repeats, measured in this run; greedy and noh_nms are called
alternately in one loop (1 s per size), so a change of the machine's load hits both alike.

    python tools/bench/noh_nms.py [--sizes 100 300 1000 3000] [--threads 1]

The last line is ``noh_nms/greedy time ratio at N=1000: <x>`` (CPU, wall clock). The last column
gives the same ratio in the calling thread's CPU time (both ops are single-threaded here), which a
shared, busy machine disturbs much less than the wall clock.
"""
import argparse
import os
import statistics
import time

import torch

from mm_ext.core.nms import _ckernel, noh_nms
from mm_ext.core.nms.testing import clustered_detections, crowd_nms_reference


def _greedy_op():
    """(name, fn(boxes, scores, iou) -> keep) of the greedy reference."""
    try:
        from mmcv.ops import nms

        return 'mmcv.ops.nms', lambda b, s, t: nms(b, s, t)[1]
    except Exception:  # mmcv not installed: fall back to torchvision, say so
        import torchvision

        return 'torchvision.ops.nms (mmcv missing)', torchvision.ops.nms


def _time(fn, budget_s=0.3, min_reps=3, max_reps=200, sync=None, clock=time.perf_counter):
    """Median time of ``fn`` in ms; ``clock=time.thread_time`` counts this thread's CPU time only
    (stable on a shared machine: time spent descheduled is not counted)."""
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget_s):
        t = clock()
        fn()
        if sync:
            sync()
        times.append(clock() - t)
    return statistics.median(times) * 1e3


def _time_alternating(fa, fb, budget_s=1.0, min_reps=5, max_reps=500, sync=None):
    """Median times (ms) of ``fa`` and ``fb`` called alternately in one loop, so that a change of the
    machine's load hits both alike (a shared machine otherwise biases whichever ran in the busier window)."""
    fa(), fb()  # warm-up
    ta, tb = [], []
    start = time.perf_counter()
    while len(ta) < max_reps and (len(ta) < min_reps or time.perf_counter() - start < budget_s):
        for fn, times in ((fa, ta), (fb, tb)):
            t = time.perf_counter()
            fn()
            if sync:
                sync()
            times.append(time.perf_counter() - t)
    return statistics.median(ta) * 1e3, statistics.median(tb) * 1e3


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', type=int, nargs='+', default=[100, 300, 1000, 3000])
    p.add_argument('--threads', type=int, default=1,
                   help='torch CPU threads (default 1: mmcv/torchvision CPU NMS are single-threaded, '
                        'and the small ops of noh_nms gain nothing from more threads)')
    p.add_argument('--ref-max', type=int, default=3000, help='largest N for the reference loop')
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    name, greedy = _greedy_op()
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    kernel = _ckernel.load()
    print(f'greedy reference: {name}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads; '
          f'noh_nms CPU path: {"compiled kernel" if kernel else "vectorised numpy (kernel unavailable)"}')
    ratio_1000 = None
    for dev in devices:
        sync = torch.cuda.synchronize if dev == 'cuda' else None
        if dev == 'cuda':
            try:  # mmcv may be built without CUDA ops
                greedy(torch.zeros(1, 4, device='cuda'), torch.zeros(1, device='cuda'), 0.5)
            except Exception:
                import torchvision

                name, greedy = 'torchvision.ops.nms (mmcv has no CUDA ops)', torchvision.ops.nms
        print(f'\n[{dev}] times in ms (median); greedy = {name}')
        print(f'{"N":>6} {"kept greedy":>11} {"kept noh":>8} {"greedy":>9} {"noh_nms":>9} {"vectorised":>10} '
              f'{"ref loop":>9} '
              f'{"noh/greedy":>10} {"ref/noh":>8} {"match":>5} {"cpu-time noh/greedy":>19}')
        for n in a.sizes:
            d = clustered_detections(n, seed=0, device=dev)
            b, s, q, o = d['boxes'], d['scores'], d['noh_scores'], d['noh_boxes']
            g_keep = greedy(b, s, 0.5)
            keep, _ = noh_nms(b, s, q, o)
            t_g, t_n = _time_alternating(lambda: greedy(b, s, 0.5), lambda: noh_nms(b, s, q, o), sync=sync)
            t_v = f'{"-":>10}'
            if dev == 'cpu' and kernel is not None:  # the vectorised rounds on the same input
                os.environ[_ckernel.ENV_VAR] = '0'
                try:
                    assert torch.equal(noh_nms(b, s, q, o)[0], keep), 'kernel and vectorised path differ'
                    t_v = f'{_time(lambda: noh_nms(b, s, q, o)):10.3f}'
                finally:
                    os.environ[_ckernel.ENV_VAR] = '1'
            if dev == 'cpu' and n <= a.ref_max:
                ref_keep, _ = crowd_nms_reference(b, s, q, o)
                t_r = _time(lambda: crowd_nms_reference(b, s, q, o), budget_s=0.5, min_reps=1, max_reps=5)
                match = 'yes' if torch.equal(ref_keep, keep) else 'NO'
                ref_col, spd = f'{t_r:9.2f}', f'{t_r / t_n:8.1f}'
            else:
                ref_col, spd, match = f'{"-":>9}', f'{"-":>8}', '-'
            ratio = t_n / t_g
            if dev == 'cpu' and n == 1000:
                ratio_1000 = ratio
            cpu = '-'
            if dev == 'cpu':  # the same ratio in this thread's CPU time (robust to a busy machine)
                c_n = _time(lambda: noh_nms(b, s, q, o), clock=time.thread_time)
                cpu = f'{c_n / _time(lambda: greedy(b, s, 0.5), clock=time.thread_time):.2f}'
            print(f'{n:>6} {len(g_keep):>11} {len(keep):>8} {t_g:9.3f} {t_n:9.3f} {t_v} {ref_col} '
                  f'{ratio:10.2f} {spd} {match:>5} {cpu:>19}')
    if ratio_1000 is None:  # 1000 not in --sizes: measure it for the summary line
        d = clustered_detections(1000, seed=0)
        b, s, q, o = d['boxes'], d['scores'], d['noh_scores'], d['noh_boxes']
        t_g, t_n = _time_alternating(lambda: greedy(b, s, 0.5), lambda: noh_nms(b, s, q, o))
        ratio_1000 = t_n / t_g
    print(f'noh_nms/greedy time ratio at N=1000: {ratio_1000:.2f}')


if __name__ == '__main__':
    main()
