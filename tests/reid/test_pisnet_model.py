"""PISNet blocks and model: QGAB vs a hand-written reference, MPS/GRAM wiring (described vs release)."""
import pytest
import torch
import torch.nn.functional as F

from reid_ext.core.pisnet import QueryGuidedAttention, corrupt_query, mps_loss, pisnet_loss
from reid_ext.models.bnneck_resnet import BNNeckReID
from reid_ext.models.pisnet import PISNet


def _ref_attention(block, tgt, guide, pool):
    """Loop reference: a(p) = max_q <theta(T)_p, phi(G)_q> / N_q with phi pooled 2x2 (max)."""
    wt, bt = block.theta.weight[:, :, 0, 0], block.theta.bias
    wp, bp = block.phi.weight[:, :, 0, 0], block.phi.bias
    b, c, h, w = tgt.shape
    out = torch.zeros(b, 1, h, w)
    for i in range(b):
        ph = torch.einsum('oc,chw->ohw', wp, guide[i]) + bp[:, None, None]
        if pool:
            H, W = ph.shape[1:]
            ph = torch.stack([ph[:, y:y + 2, x:x + 2].amax(dim=(1, 2))
                              for y in range(0, H, 2) for x in range(0, W, 2)], 1)
        else:
            ph = ph.flatten(1)
        for y in range(h):
            for x in range(w):
                th = wt @ tgt[i, :, y, x] + bt
                out[i, 0, y, x] = (th @ ph).max() / ph.shape[1]
    return out


@pytest.mark.parametrize('pyramid', ['s2', 'none'])
def test_qgab_matches_loop_reference(pyramid):
    torch.manual_seed(0)
    blk = QueryGuidedAttention(6, 3, pyramid)
    tgt, guide = torch.randn(2, 6, 4, 3), torch.randn(2, 6, 4, 2)
    with torch.no_grad():
        out, a = blk(tgt, guide)
        ref = _ref_attention(blk, tgt, guide, pyramid == 's2')
    torch.testing.assert_close(a, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, tgt * ref + tgt, rtol=1e-5, atol=1e-6)
    assert blk.guide_keys(guide).shape[2] == (2 if pyramid == 's2' else 8)


def test_corruption_and_mps_by_hand():
    q1, q2 = torch.randn(1, 2, 2, 2, requires_grad=True), torch.randn(1, 2, 2, 2, requires_grad=True)
    c = corrupt_query(q1, q2)
    assert c.shape == (1, 2, 2, 4) and torch.equal(c[..., 2:], q2)
    c.sum().backward()
    assert q2.grad is None and torch.equal(q1.grad, torch.ones_like(q1))
    a, p, n = torch.tensor([[0., 0.]]), torch.tensor([[3., 4.]]), torch.tensor([[1., 0.]])
    assert float(mps_loss(a, p, n, 0.1)) == pytest.approx(5 - 1 + 0.1)
    assert float(mps_loss(a, n, p, 0.1)) == 0.0


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, 32, 16, generator=g) for _ in range(3)], torch.tensor([0, 0, 1, 1])


def _criteria():
    import torchreid
    tri = torchreid.losses.TripletLoss(margin=0.1)
    return (lambda x, y: F.cross_entropy(x, y)), (lambda f, y: tri(f, y))


def test_mps_gradient_described_vs_release_wiring():
    torch.manual_seed(0)
    (g, q1, q2), pids = _batch()
    for release in (False, True):
        torch.manual_seed(0)
        m = PISNet(3, backbone='tiny', release_wiring=release).train()
        out = m(g, q1, q2)
        l = mps_loss(out['feat'], out['q1_feat'], out['gq2_feat'], margin=10.0)
        params = m.attention_parameters()[:2]  # QGAB theta (weight, bias)
        grads = torch.autograd.grad(l, params, allow_unused=True)
        norm = sum(float(x.abs().sum()) for x in grads if x is not None)
        if release:
            assert float(l) == pytest.approx(10.0)   # constant = margin
            assert norm == 0.0
            assert torch.equal(out['gram_logits'], out['logits'])
        else:
            assert float(l) > 0 and norm > 0
            assert not torch.equal(out['gram_logits'], out['logits'])


def test_release_wiring_total_loss_is_reweighted_main_loss():
    torch.manual_seed(0)
    (g, q1, q2), pids = _batch(1)
    m = PISNet(3, backbone='tiny', release_wiring=True).train()
    ce, tri = _criteria()
    out = m(g, q1, q2)
    loss, _ = pisnet_loss(out, pids, ce, tri, gamma=1.0, beta=0.5, margin=0.1)
    expect = 1.5 * (ce(out['logits'], pids) + tri(out['feat'], pids)) + 0.1
    torch.testing.assert_close(loss, expect)


def test_stage1_checkpoint_loads_and_eval_feature_is_baseline():
    torch.manual_seed(0)
    base = BNNeckReID(3, 'triplet', 'tiny').eval()
    m = PISNet(3, backbone='tiny').eval()
    missing, unexpected = m.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(('qgab.', 'gram.')) for k in missing)
    x = torch.randn(2, 3, 32, 16)
    torch.testing.assert_close(m(x), base(x))
    # guided features of (g, q) pairs = BN(GAP(QGAB(maps(g), maps(q))))
    gm, qm = m.maps(x), m.maps(x.flip(0))
    ref = m.bnneck(F.adaptive_avg_pool2d(gm * m.qgab.weights(gm, qm) + gm, 1).flatten(1))
    torch.testing.assert_close(m.guided_features(gm, qm), ref)


def test_attention_only_freezes_all_but_the_attention_blocks():
    m = PISNet(3, backbone='tiny', attention_only=True)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(('qgab.', 'gram.')) for n in trainable)
    assert trainable == {n for n, _ in m.named_parameters() if n.startswith(('qgab.', 'gram.'))}
