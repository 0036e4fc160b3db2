"""dsm / be / tbe / moco-intra modes against manual computations.

Each test records what the query and key encoders receive, replays the
disturbance with the same generator state, and rebuilds the loss by hand:
which view is disturbed, that the key stays clean, which feature maps TCR
compares, ``tcr_in_nce`` both ways and ``disturb_side='key'``.
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mm_ext.core.video import (ContrastiveConfig, ProjectionHead, background_erasing, tps_warp,
                               video_contrastive_loss)


class _Recorder(nn.Module):
    """conv + ReLU encoder that records its inputs; returns (map, L2-normalised embedding)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 6, 3, padding=1)
        self.head = ProjectionHead(6, 8)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        m = torch.relu(self.conv(x))
        return m, self.head(m)


def _setup(seed=0):
    torch.manual_seed(seed)
    enc_q, enc_k = _Recorder(), _Recorder()
    enc_k.load_state_dict(enc_q.state_dict())
    with torch.no_grad():  # a key encoder that differs from the query encoder
        enc_k.conv.weight.mul_(0.9)
    views = torch.randn(3, 3, 3, 6, 8, 8)
    queue = F.normalize(torch.randn(5, 8), dim=1)
    return enc_q, enc_k, views, queue


def _infonce(q, k, queue, n, tau):
    """Hand-written InfoNCE: row b = [q.k, q.Q_1..Q_K, q.n] / tau, target 0."""
    rows = []
    for b in range(q.shape[0]):
        logits = torch.cat([(q[b] * k[b]).sum().view(1), queue @ q[b], (q[b] * n[b]).sum().view(1)])
        rows.append(-torch.log_softmax(logits / tau, 0)[0])
    return torch.stack(rows).mean()


def _tcr(map_fwd, map_rev):
    """Hand-written TCR: space-pooled maps, the reversed stream flipped back in time, MSE."""
    a = map_fwd.mean(dim=(3, 4))
    b = map_rev.mean(dim=(3, 4)).flip(2)
    return ((a - b) ** 2).mean()


def _run(cfg, seed=0):
    enc_q, enc_k, views, queue = _setup(seed)
    g = torch.Generator().manual_seed(123)
    losses, keys = video_contrastive_loss(views, enc_q, enc_k, queue, cfg, generator=g)
    return enc_q, enc_k, views, queue, losses, keys


@pytest.mark.parametrize('side', ['query', 'key'])
def test_dsm_warps_one_view_and_keeps_the_other_clean(side):
    cfg = ContrastiveConfig(mode='dsm', temperature=0.1, disturb_side=side)
    enc_q, enc_k, views, queue, losses, keys = _run(cfg)
    anchor, positive, negative = views[:, 0], views[:, 1], views[:, 2]
    g = torch.Generator().manual_seed(123)
    warped = tps_warp(anchor if side == 'query' else positive, 5, 0.1, False, generator=g)[0]
    q_in, k_in = (warped, positive) if side == 'query' else (anchor, warped)
    assert len(enc_k.seen) == 1 and torch.equal(enc_k.seen[0], k_in)
    assert len(enc_q.seen) == 2
    assert torch.allclose(enc_q.seen[0], q_in) and torch.equal(enc_q.seen[1], negative)
    assert not torch.allclose(warped, anchor if side == 'query' else positive)
    enc_q.seen.clear()
    with torch.no_grad():
        q = enc_q(q_in)[1]
        k = enc_k(k_in)[1]
        n = enc_q(negative)[1]  # the intra-video negative of the same sample
    assert torch.allclose(losses['loss_nce'], _infonce(q, k, queue, n, 0.1), atol=1e-5)
    assert torch.allclose(keys, k, atol=1e-6)
    assert 'loss_tcr' not in losses


@pytest.mark.parametrize('side', ['query', 'key'])
def test_be_mixes_a_static_frame_into_one_view(side):
    cfg = ContrastiveConfig(mode='be', temperature=0.2, disturb_side=side)
    enc_q, enc_k, views, queue, losses, keys = _run(cfg)
    anchor, positive, negative = views[:, 0], views[:, 1], views[:, 2]
    src = anchor if side == 'query' else positive
    g = torch.Generator().manual_seed(123)
    _, lam, idx = background_erasing(src, 0.3, False, generator=g)
    # the distracting clip by hand: (1 - lam) x_t + lam x_{t*}, t* a frame of the same clip
    mixed = torch.stack([(1 - lam[b]) * src[b] + lam[b] * src[b][:, idx[b]:idx[b] + 1]
                         for b in range(src.shape[0])])
    assert float(lam.min()) == float(lam.max())  # one draw per batch (release)
    q_in, k_in = (mixed, positive) if side == 'query' else (anchor, mixed)
    assert torch.allclose(enc_k.seen[0], k_in, atol=1e-6)
    assert torch.allclose(enc_q.seen[0], q_in, atol=1e-6) and torch.equal(enc_q.seen[1], negative)
    with torch.no_grad():
        q, k, n = enc_q(q_in)[1], enc_k(k_in)[1], enc_q(negative)[1]
    assert torch.allclose(losses['loss_nce'], _infonce(q, k, queue, n, 0.2), atol=1e-5)
    assert torch.allclose(keys, k, atol=1e-6)


@pytest.mark.parametrize('tcr_in_nce', [True, False])
def test_tbe_reverses_the_distracting_clip_and_tcr_compares_key_map(tcr_in_nce):
    cfg = ContrastiveConfig(mode='tbe', temperature=0.1, tcr_weight=0.7, tcr_in_nce=tcr_in_nce)
    enc_q, enc_k, views, queue, losses, keys = _run(cfg)
    anchor, positive, negative = views[:, 0], views[:, 1], views[:, 2]
    g = torch.Generator().manual_seed(123)
    mixed = background_erasing(anchor, 0.3, False, generator=g)[0]
    reversed_mixed = mixed[:, :, torch.arange(mixed.shape[2] - 1, -1, -1)]
    # key: the clean positive, forward in time
    assert len(enc_k.seen) == 1 and torch.equal(enc_k.seen[0], positive)
    # query: reversed distracting clip [, un-reversed distracting clip], then the negative
    expect_q = [reversed_mixed] + ([] if tcr_in_nce else [mixed]) + [negative]
    assert len(enc_q.seen) == len(expect_q)
    for got, exp in zip(enc_q.seen, expect_q):
        assert torch.allclose(got, exp, atol=1e-6)
    with torch.no_grad():
        map_k, k = enc_k(positive)
        map_r, q_r = enc_q(reversed_mixed)
        q = q_r if tcr_in_nce else enc_q(mixed)[1]
        n = enc_q(negative)[1]
    assert torch.allclose(losses['loss_nce'], _infonce(q, k, queue, n, 0.1), atol=1e-5)
    # TCR: the key's map of the forward positive against the query's map of the reversed clip
    assert torch.allclose(losses['loss_tcr'], 0.7 * _tcr(map_k, map_r), atol=1e-6)
    # ... and not against the un-reversed map or without the flip
    map_m = enc_q(mixed)[0].detach()
    assert not torch.allclose(losses['loss_tcr'], 0.7 * _tcr(map_k, map_m), atol=1e-6)
    assert torch.allclose(keys, k, atol=1e-6)


def test_tcr_gradient_reaches_only_the_query_encoder():
    cfg = ContrastiveConfig(mode='tbe')
    enc_q, enc_k, views, queue, losses, _ = _run(cfg)
    losses['loss_tcr'].backward()
    assert enc_q.conv.weight.grad.abs().sum() > 0
    assert enc_k.conv.weight.grad is None


@pytest.mark.parametrize('neg', ['other', 'intra'])
def test_moco_extra_negative_other_or_intra(neg):
    cfg = ContrastiveConfig(mode='moco', temperature=0.2, moco_negative=neg)
    enc_q, enc_k, views, queue, losses, keys = _run(cfg)
    anchor, positive, negative = views[:, 0], views[:, 1], views[:, 2]
    assert torch.equal(enc_q.seen[0], anchor) and torch.equal(enc_k.seen[0], positive)
    with torch.no_grad():
        q, k, n = enc_q(anchor)[1], enc_k(positive)[1], enc_q(negative)[1]
    if neg == 'other':
        n = n[[2, 0, 1]]  # sample b gets the negative window of sample b - 1: another video
    assert torch.allclose(losses['loss_nce'], _infonce(q, k, queue, n, 0.2), atol=1e-5)


def test_moco_negative_validated():
    with pytest.raises(ValueError, match='moco_negative'):
        ContrastiveConfig(mode='moco', moco_negative='same')
