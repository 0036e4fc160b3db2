"""InfoNCE with an extra negative, triplet, TCR, queue, EMA and retrieval: hand-computed cases."""
import math

import pytest
import torch
import torch.nn as nn

from mm_ext.core.video import (dsm_triplet_loss, enqueue_wraparound, infonce_with_extra_negative,
                               momentum_update, retrieval_recall, temporal_consistency_loss)


def test_infonce_extra_negative_hand_computed():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[0.6, 0.8]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    n = torch.tensor([[0.8, 0.6]])
    loss, logits = infonce_with_extra_negative(q, k, queue, n, temperature=0.5)
    # logits = [q.k, q.Q1, q.Q2, q.n] / 0.5 = [1.2, 0, -2, 1.6]
    assert torch.allclose(logits, torch.tensor([[1.2, 0.0, -2.0, 1.6]]))
    exp = -1.2 + math.log(math.exp(1.2) + math.exp(0) + math.exp(-2) + math.exp(1.6))
    assert abs(loss.item() - exp) < 1e-6
    loss2, logits2 = infonce_with_extra_negative(q, k, queue, None, temperature=0.5)
    assert logits2.shape == (1, 3)  # no extra logit: 1 + K


def test_infonce_gradients_flow_to_query_and_extra_negative_only():
    q = torch.randn(3, 4, requires_grad=True)
    k = torch.randn(3, 4, requires_grad=True)
    n = torch.randn(3, 4, requires_grad=True)
    queue = torch.randn(5, 4, requires_grad=True)
    loss, _ = infonce_with_extra_negative(q, k, queue, n)
    loss.backward()
    assert q.grad is not None and n.grad is not None
    assert k.grad is None and queue.grad is None
    with pytest.raises(ValueError, match='queue'):
        infonce_with_extra_negative(q, k, torch.randn(5, 3))


def test_dsm_triplet_hand_computed():
    a = torch.tensor([[0., 0.], [0., 0.]])
    p = torch.tensor([[1., 0.], [0., 1.]])
    n = torch.tensor([[3., 0.], [0., 1.2]])
    # intra: max(1 - 3 + .5, 0) = 0 ; max(1 - 1.2 + .5, 0) = .3 -> mean .15
    # inter (n reversed): sample 0 vs n=(0,1.2): 1-1.2+.5=.3 ; sample 1 vs (3,0): 1-3+.5<0 -> .15
    loss = dsm_triplet_loss(a, p, n, margin=0.5)
    assert abs(loss.item() - 0.3) < 1e-5


def test_tcr_flip_consistency():
    f = torch.randn(2, 3, 4, 2, 2)
    # the map of a reversed clip that is exactly time-equivariant gives zero loss
    assert temporal_consistency_loss(f, torch.flip(f, (2,))).item() < 1e-12
    # hand-computed: pooled a = [1, 2], pooled flipped b = flip([0, 4]) = [4, 0]
    a = torch.tensor([1., 2.]).view(1, 1, 2, 1, 1).expand(1, 1, 2, 2, 2)
    b = torch.tensor([0., 4.]).view(1, 1, 2, 1, 1).expand(1, 1, 2, 2, 2)
    assert abs(temporal_consistency_loss(a, b).item() - ((1 - 4) ** 2 + (2 - 0) ** 2) / 2) < 1e-6


def test_enqueue_wraparound_queue_not_multiple_of_batch():
    queue = torch.zeros(5, 2)
    ptr = torch.zeros(1, dtype=torch.long)
    k1 = torch.tensor([[1., 1.], [2., 2.], [3., 3.]])
    enqueue_wraparound(queue, ptr, k1)
    assert ptr.item() == 3 and queue[:3].equal(k1) and queue[3:].abs().sum() == 0
    k2 = torch.tensor([[4., 4.], [5., 5.], [6., 6.]])
    enqueue_wraparound(queue, ptr, k2)
    assert ptr.item() == 1
    assert queue[:, 0].tolist() == [6., 2., 3., 4., 5.]
    # more keys than K: the last K win, pointer consistent
    enqueue_wraparound(queue, ptr, torch.arange(14.).view(7, 2))
    assert ptr.item() == (1 + 7) % 5
    assert sorted(queue[:, 0].tolist()) == [4., 6., 8., 10., 12.]
    assert queue[(ptr.item() - 1) % 5, 0] == 12.


def test_momentum_update_params_only():
    torch.manual_seed(0)
    q = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    k = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    k[1].running_mean.fill_(7.0)
    kw = k[0].weight.clone()
    momentum_update(k, q, 0.9)
    assert torch.allclose(k[0].weight, 0.9 * kw + 0.1 * q[0].weight)
    assert torch.all(k[1].running_mean == 7.0)  # own buffers (release)
    momentum_update(k, q, 0.9, buffers='copy')
    assert torch.equal(k[1].running_mean, q[1].running_mean)
    with pytest.raises(ValueError, match='momentum'):
        momentum_update(k, q, 1.5)


def test_retrieval_recall_hand_computed():
    g = torch.tensor([[1., 0.], [0., 1.], [-1., 0.]])
    gl = torch.tensor([0, 1, 2])
    q = torch.tensor([[0.9, 0.1], [0.1, -1.0]])
    ql = torch.tensor([0, 1])
    # query 0: nearest = item 0 (label 0): hit at 1. query 1: order 2?, cosine with (0,1) is
    # negative; nearest = item 0 (cos .1) then item 2 (-.1) then item 1 (-1) -> hit only at k=3
    r = retrieval_recall(q, ql, g, gl, topk=(1, 2, 3, 50))
    assert r == {'R@1': 50.0, 'R@2': 50.0, 'R@3': 100.0, 'R@50': 100.0}
