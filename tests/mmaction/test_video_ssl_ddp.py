"""DDP on 2 gloo ranks: the queue holds the keys gathered from both ranks; with our wrapper and
gradient accumulation they enter once per optimiser step; shuffle-BN keys and SyncBN statistics."""
import os

import pytest
import torch

pytest.importorskip('mmaction')

B = 2


def _worker(rank, world, init_file, out_dir):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world)
    try:
        import mm_ext.mmaction  # noqa: F401
        from mmaction.registry import MODELS
        from mmengine.model import MMDistributedDataParallel
        from mmengine.optim import OptimWrapper

        from _video_ssl_helpers import ViewsDataset, model_cfg
        torch.manual_seed(0)  # identical initial weights and queue on both ranks
        model = MODELS.build(model_cfg('dsm', queue_len=7))
        model.init_weights()
        ddp = MMDistributedDataParallel(module=model)
        ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
        ds = ViewsDataset(n=B, seed=10 + rank)  # different clips per rank
        data = dict(inputs=[ds[i]['inputs'] for i in range(B)],
                    data_samples=[ds[i]['data_samples'] for i in range(B)])
        q0 = model.queue.clone()
        ddp.train_step(data, ow)
        # keys of this rank, recomputed: the key encoder is unchanged by the step and its BN
        # uses batch statistics, so f_k(positive) is exactly what was enqueued
        with torch.no_grad():
            inputs = model.data_preprocessor(data, training=True)['inputs']
            keys = model._encode_key(inputs[:, 1])[1]
        gathered = [torch.empty_like(keys) for _ in range(world)]
        dist.all_gather(gathered, keys)
        expected = torch.cat(gathered)  # rank order
        assert model.queue_ptr.item() == world * B
        torch.testing.assert_close(model.queue[:world * B], expected, rtol=0, atol=1e-6)
        assert torch.equal(model.queue[world * B:], q0[world * B:])
        queues = [torch.empty_like(model.queue) for _ in range(world)]
        dist.all_gather(queues, model.queue.contiguous())
        assert torch.equal(queues[0], queues[1])  # every rank holds the same queue
        open(os.path.join(out_dir, f'ok{rank}'), 'w').close()
        dist.barrier()  # no rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()


def test_ddp_queue_holds_gathered_keys(spawn_gloo):
    spawn_gloo(_worker)


def _worker_accumulate_shuffle_sync(rank, world, init_file, out_dir):
    """Our DDP wrapper with accumulation 2 and shuffle-BN; then SyncBN statistics."""
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world)
    try:
        import mm_ext.mmaction  # noqa: F401
        from mmaction.registry import MODELS
        from mmengine.optim import OptimWrapper

        from _video_ssl_helpers import ViewsDataset, model_cfg
        from mm_ext.mmaction.video_ssl import VideoSSLDistributedDataParallel
        torch.manual_seed(0)
        model = MODELS.build(model_cfg('moco', queue_len=11, shuffle_bn=True))
        model.init_weights()
        ddp = VideoSSLDistributedDataParallel(module=model)
        ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01), accumulative_counts=2)
        ds = ViewsDataset(n=2 * B, seed=20 + rank)
        q0 = model.queue.clone()
        for i in range(2):
            data = dict(inputs=[ds[j]['inputs'] for j in range(i * B, (i + 1) * B)],
                        data_samples=[ds[j]['data_samples'] for j in range(i * B, (i + 1) * B)])
            # the keys by hand: rank 0's permutation of the global batch of positives, each
            # rank's slice through the key encoder, put back in global order
            torch.manual_seed(100 + i)
            perm = torch.randperm(world * B)
            with torch.no_grad():
                pos = model.data_preprocessor(data, training=True)['inputs'][:, 1]
                parts = [torch.empty_like(pos) for _ in range(world)]
                dist.all_gather(parts, pos)
                x_all = torch.cat(parts)
                ref = torch.empty(world * B, model.queue.shape[1])
                for r in range(world):
                    idx = perm[r * B:(r + 1) * B]
                    ref[idx] = model.key_neck(model.key_backbone(x_all[idx]))
            torch.manual_seed(100 + i)  # moco draws nothing else: the same permutation
            ddp.train_step(data, ow)
            if i == 0:
                assert model.queue_ptr.item() == 0 and torch.equal(model.queue, q0)
                ref0 = ref
        n = world * B
        assert model.queue_ptr.item() == 2 * n
        torch.testing.assert_close(model.queue[:2 * n], torch.cat([ref0, ref]), rtol=0,
                                   atol=1e-5)
        queues = [torch.empty_like(model.queue) for _ in range(world)]
        dist.all_gather(queues, model.queue.contiguous())
        assert torch.equal(queues[0], queues[1])

        # SyncBN: after a step on different data the BN statistics agree across ranks
        torch.manual_seed(0)
        sync = MODELS.build(model_cfg('dsm', queue_len=11, sync_bn=True))
        sync.init_weights()
        ddp2 = VideoSSLDistributedDataParallel(module=sync)
        ow2 = OptimWrapper(torch.optim.SGD(sync.parameters(), lr=0.01))
        ddp2.train_step(dict(inputs=[ds[j]['inputs'] for j in range(B)],
                             data_samples=[ds[j]['data_samples'] for j in range(B)]), ow2)
        rm = sync.backbone.conv1.bn.running_mean.clone()
        got = [torch.empty_like(rm) for _ in range(world)]
        dist.all_gather(got, rm)
        torch.testing.assert_close(got[0], got[1])
        assert not torch.equal(rm, torch.zeros_like(rm))
        open(os.path.join(out_dir, f'ok{rank}'), 'w').close()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_accumulation_shuffle_bn_and_sync_bn(spawn_gloo):
    spawn_gloo(_worker_accumulate_shuffle_sync)