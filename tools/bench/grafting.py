#!/usr/bin/env python
"""Grafting cost: the per-epoch overhead of the ring exchange, and one ring exchange of a
ResNet-50-sized state between 2 gloo ranks.

1. One-process mode, N = 2 networks (configs/mmpretrain/grafting/grafting_resnet20-w8-2net_*
   with ``--width``/``--depth``) trained through mmengine's Runner on clutter-shapes-cifar for
   ``--epochs`` epochs. Each epoch is timed from the first ``before_train_epoch`` hook to the last
   ``after_train_epoch`` hook, so it includes the exchange (entropies of every layer, coefficients,
   the blend of every state entry, invalid-filter statistics, copy back); the exchange itself is
   timed inside the same epochs. overhead = epoch time with the exchange / (the same epoch time
   minus the exchange), median over the epochs that graft (epoch 0 does not). Goal <= 1.02.
2. ``torch.distributed`` ring exchange (mm_ext.core.grafting.ring_exchange) of a state with the
   shapes of torchvision's ResNet-50 (25.6 M parameters + BN buffers) between 2 gloo ranks on this
   machine: best and median of ``--reps``.

The last line is ``grafting overhead per epoch: <x>``.

    python tools/bench/grafting.py [--epochs 4] [--depth 20] [--width 16] [--threads 1]
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from mm_ext.engine.launch import free_port  # noqa: E402
CFG = REPO / 'configs/mmpretrain/grafting/grafting_resnet20-w8-2net_1xb64-15e_clutter-shapes.py'


def _resnet50_state():
    import torchvision
    return {k: v for k, v in torchvision.models.resnet50().state_dict().items()}


def _ring_worker(rank, port, reps, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    from mm_ext.core.grafting import ring_exchange
    torch.manual_seed(rank)
    state = _resnet50_state()
    times = []
    for _ in range(reps + 1):
        dist.barrier()
        t = time.perf_counter()
        got = ring_exchange(state)
        times.append(time.perf_counter() - t)
    ok = True
    if rank == 0:  # rank 0 received rank 1's state: rebuild it from rank 1's seed and compare
        torch.manual_seed(1)
        expect = _resnet50_state()
        ok = all(torch.equal(got[k], expect[k]) for k in expect)
        out.put((times[1:], sum(v.numel() for k, v in state.items() if v.is_floating_point()),
                 sum(v.numel() * v.element_size() for v in state.values()), ok))
    dist.barrier()
    dist.destroy_process_group()


def ring_bench(reps):
    port = free_port()
    ctx = mp.get_context('spawn')
    q = ctx.Queue()
    procs = [ctx.Process(target=_ring_worker, args=(r, port, reps, q)) for r in range(2)]
    for p in procs:
        p.start()
    res = q.get(timeout=600)
    for p in procs:
        p.join(timeout=60)
    return res


def epoch_bench(args):
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    import mm_ext.mmpretrain  # noqa: F401
    from mm_ext.datagen import make_dataset
    root = make_dataset('clutter-shapes-cifar', root=REPO / 'data')
    cfg = Config.fromfile(str(CFG))
    cfg.work_dir = str(REPO / 'work_dirs/bench/grafting')
    cfg.experiment_name = f'bench_grafting_{int(time.time())}'
    for ds in (cfg.train_dataloader.dataset.dataset, cfg.val_dataloader.dataset):
        ds.data_root = str(root)
    cfg.model.net.backbone.update(depth=args.depth, base_channels=args.width)
    cfg.model.net.head.in_channels = 4 * args.width
    cfg.train_cfg.update(max_epochs=args.epochs, val_interval=args.epochs)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=args.epochs)
    cfg.default_hooks.logger.interval = 1000
    cfg.log_level = 'WARNING'
    epochs, grafts = {}, {}

    class Start(Hook):
        priority = 'HIGHEST'

        def before_train_epoch(self, runner):
            epochs[runner.epoch] = time.perf_counter()

    class Stop(Hook):
        priority = 'LOWEST'

        def after_train_epoch(self, runner):
            epochs[runner.epoch] = time.perf_counter() - epochs[runner.epoch]

    runner = Runner.from_cfg(cfg)
    runner.register_hook(Start())
    runner.register_hook(Stop())
    hook = next(h for h in runner.hooks if type(h).__name__ == 'GraftingHook')
    graft = hook.graft

    def timed(r, epoch):
        t = time.perf_counter()
        graft(r, epoch)
        grafts[r.epoch] = time.perf_counter() - t

    hook.graft = timed
    runner.train()
    n_params = sum(p.numel() for p in runner.model.nets['0'].parameters())
    with_x = [epochs[e] for e in sorted(grafts)]
    without = [epochs[e] - grafts[e] for e in sorted(grafts)]
    return n_params, with_x, without, [grafts[e] for e in sorted(grafts)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--epochs', type=int, default=4)
    ap.add_argument('--depth', type=int, default=20)
    ap.add_argument('--width', type=int, default=16)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--threads', type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    times, n_float, n_bytes, ok = ring_bench(args.reps)
    print(f'ring exchange, ResNet-50-sized state ({n_float / 1e6:.1f} M float parameters+buffers, '
          f'{n_bytes / 2**20:.0f} MiB), 2 gloo ranks on this machine: best {min(times):.3f} s, '
          f'median {statistics.median(times):.3f} s over {len(times)}; received state correct: {ok}', flush=True)
    n_params, with_x, without, grafts = epoch_bench(args)
    ratio = statistics.median([a / b for a, b in zip(with_x, without)])
    print(f'one process, 2 x ResNet-{args.depth}-w{args.width} ({n_params / 1e3:.0f} k parameters each), '
          f'{args.epochs} epochs on clutter-shapes-cifar, {args.threads} thread(s)')
    for e, (a, g) in enumerate(zip(with_x, grafts), start=1):
        print(f'  epoch {e}: {a:7.2f} s with the exchange, of which exchange {g * 1000:7.1f} ms')
    print(f'grafting overhead per epoch: {ratio:.4f}')


if __name__ == '__main__':
    main()
