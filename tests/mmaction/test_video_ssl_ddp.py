"""DDP: after one step on 2 gloo ranks the queue holds the keys gathered from both ranks."""
import os

import pytest
import torch
import torch.multiprocessing as mp

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


def test_ddp_queue_holds_gathered_keys(tmp_path):
    world = 2
    try:
        mp.spawn(_worker, args=(world, str(tmp_path / 'init'), str(tmp_path)), nprocs=world,
                 join=True)
    except mp.ProcessExitedException:
        # gloo can abort a worker at interpreter exit ("terminate called without an active
        # exception") after its checks passed; the ok files are written only after every
        # assertion above, so they decide.
        if not all((tmp_path / f'ok{r}').exists() for r in range(world)):
            raise
    assert all((tmp_path / f'ok{r}').exists() for r in range(world))
