"""Shuffle-BN and SyncBatchNorm on 2 gloo ranks (CPU) against single-process computations."""
import os

import torch
import torch.nn as nn

B = 3  # per rank


def _net(bn_cls=nn.BatchNorm3d):
    torch.manual_seed(0)  # identical weights on every rank
    return nn.Sequential(nn.Conv3d(2, 4, 1), bn_cls(4), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                         nn.Flatten(), nn.Linear(4, 3))


def _worker(rank, world, init_file, out_dir):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world)
    try:
        from mm_ext.core.video import (SyncBatchNorm, batch_shuffle, batch_unshuffle,
                                       convert_sync_batchnorm)
        x = torch.randn(B, 2, 2, 3, 3, generator=torch.Generator().manual_seed(100 + rank))
        xs = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(xs, x)
        x_all = torch.cat(xs)  # the global batch, rank order

        # 1. shuffle / unshuffle round trip: every rank gets its own samples back
        g = torch.Generator().manual_seed(7)
        x_sh, inverse = batch_shuffle(x, generator=g)
        assert x_sh.shape == x.shape
        assert torch.equal(batch_unshuffle(x_sh, inverse), x)
        # the permutation is shared: the shuffled slices of all ranks partition the global batch
        parts = [torch.empty_like(x_sh) for _ in range(world)]
        dist.all_gather(parts, x_sh)
        perm = torch.argsort(inverse)
        assert torch.equal(torch.cat(parts), x_all[perm])

        # 2. keys with shuffle-BN equal a per-sample computation: BN in train mode uses the
        #    statistics of the shuffled slice that held the sample
        net = _net()
        net.train()
        with torch.no_grad():
            x_sh, inverse = batch_shuffle(x, generator=torch.Generator().manual_seed(8))
            keys = batch_unshuffle(net(x_sh), inverse)
            perm = torch.argsort(inverse)
            ref = torch.empty(world * B, 3)
            for r in range(world):  # what rank r computed on its shuffled slice, by hand
                idx = perm[r * B:(r + 1) * B]
                ref[idx] = _net()(x_all[idx])
        torch.testing.assert_close(keys, ref[rank * B:(rank + 1) * B], rtol=1e-5, atol=1e-6)
        #    and, BN in eval mode (the same buffers on every rank), exactly f(x_i) per sample
        net = _net().eval()
        with torch.no_grad():
            x_sh, inverse = batch_shuffle(x)
            keys = batch_unshuffle(net(x_sh), inverse)
            per_sample = torch.cat([net(x[i:i + 1]) for i in range(B)])
        torch.testing.assert_close(keys, per_sample, rtol=1e-5, atol=1e-6)

        # 3. SyncBatchNorm = one BatchNorm over the global batch: outputs, input and weight
        #    gradients (summed over ranks), running statistics
        sync = convert_sync_batchnorm(_net())
        assert isinstance(sync[1], SyncBatchNorm)
        ref_net = _net()
        xg = x.clone().requires_grad_()
        w = torch.randn(world * B, 3, generator=torch.Generator().manual_seed(5))
        y = sync(xg)
        (y * w[rank * B:(rank + 1) * B]).sum().backward()
        xa = x_all.clone().requires_grad_()
        y_ref = ref_net(xa)
        (y_ref * w).sum().backward()
        torch.testing.assert_close(y, y_ref[rank * B:(rank + 1) * B].detach(), rtol=1e-5,
                                   atol=1e-5)
        torch.testing.assert_close(xg.grad, xa.grad[rank * B:(rank + 1) * B], rtol=1e-4,
                                   atol=1e-5)
        for p, p_ref in zip(sync.parameters(), ref_net.parameters()):
            gsum = p.grad.clone()
            dist.all_reduce(gsum)
            torch.testing.assert_close(gsum, p_ref.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(sync[1].running_mean, ref_net[1].running_mean)
        torch.testing.assert_close(sync[1].running_var, ref_net[1].running_var)
        open(os.path.join(out_dir, f'ok{rank}'), 'w').close()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_shuffle_bn_and_sync_bn_two_gloo_ranks(spawn_gloo):
    spawn_gloo(_worker)


def test_single_process_is_plain_batch_norm():
    from mm_ext.core.video import (SyncBatchNorm, batch_shuffle, batch_unshuffle,
                                   convert_sync_batchnorm)
    x = torch.randn(4, 2, 2, 3, 3)
    xs, inv = batch_shuffle(x)
    assert xs is x and inv is None and batch_unshuffle(xs, inv) is xs
    net, ref = convert_sync_batchnorm(_net()), _net()
    assert isinstance(net[1], SyncBatchNorm)
    torch.testing.assert_close(net(x), ref(x))
    torch.testing.assert_close(net[1].running_var, ref[1].running_var)
