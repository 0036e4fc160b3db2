"""Ring exchange over 3 gloo ranks == the one-process ring graft."""
import io
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mm_ext.core.grafting import graft_state_dict, layer_coefficients, reference_drivers, ring_exchange, ring_graft


def _state(rank):
    g = torch.Generator().manual_seed(rank)
    return {'conv1.weight': torch.randn(4, 3, 3, 3, generator=g), 'bn1.weight': torch.rand(4, generator=g),
            'bn1.num_batches_tracked': torch.tensor(10 * (rank + 1)),
            'conv2.weight': torch.randn(5, 4, 1, 1, generator=g).double(), 'fc.bias': torch.randn(3, generator=g)}


def _coefs(own, other):
    return layer_coefficients(own, other, reference_drivers(list(own)))[0]


def _worker(rank, world, port, q):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    own = _state(rank)
    pred = ring_exchange(own)
    out = graft_state_dict(own, pred, _coefs(own, pred))
    buf = io.BytesIO()  # plain bytes: tensors sent through the queue would share memory with an exited process
    torch.save((rank, dict(pred), out), buf)
    q.put(buf.getvalue())
    dist.barrier()
    dist.destroy_process_group()


def test_three_rank_ring_equals_one_process():
    world = 3
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ctx = mp.get_context('spawn')
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, world, port, q)) for r in range(world)]
    for p in procs:
        p.start()
    msgs = [torch.load(io.BytesIO(q.get(timeout=120))) for _ in range(world)]
    got = {r: (pred, out) for r, pred, out in msgs}
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    states = [_state(r) for r in range(world)]
    ref = ring_graft(states, _coefs)
    for r in range(world):
        pred, out = got[r]
        for k, v in states[(r - 1) % world].items():
            assert pred[k].dtype == v.dtype and torch.equal(pred[k], v)
        for k in ref[r]:
            assert torch.equal(out[k], ref[r][k]), k
