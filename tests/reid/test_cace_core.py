"""CACE-Net core: discrepancy operator vs a hand-built dense Laplacian, zero-init identity, the
mixed-up ID loss and the pairwise batch-hard triplet vs hand computations."""
import math

import pytest
import torch
import torch.nn.functional as F

from reid_ext.core.cace import (CorrespondenceGCN, all_ordered_pairs, discrepancy_laplacian,
                                mixed_up_id_loss, pair_distance_matrix,
                                pairwise_batch_hard_triplet, sample_pairs)


def test_discrepancy_operator_matches_hand_built_dense_laplacian():
    torch.manual_seed(0)
    c, h, w = 6, 2, 1  # 2 nodes per image, 4 nodes per pair graph
    gcn = CorrespondenceGCN(c, reduction=2)
    torch.nn.init.normal_(gcn.out.weight)  # non-zero W_o so the update is visible
    x = torch.randn(2, c, h, w)
    pi, pj = torch.tensor([0]), torch.tensor([1])
    xi, xj, a = gcn(x, pi, pj, return_attention=True)
    # independent reference: nodes, adjacency, D, L built entry by entry in float64
    nodes = [x[0, :, r, 0] for r in range(h)] + [x[1, :, r, 0] for r in range(h)]
    wy, wg, wo = (m.weight.double().flatten(1) for m in (gcn.attend, gcn.message, gcn.out))
    e = [F.normalize(wy @ n.double(), dim=0) for n in nodes]
    g = torch.stack([wg @ n.double() for n in nodes])
    n_nodes = len(nodes)
    A = torch.zeros(n_nodes, n_nodes, dtype=torch.float64)
    for n in range(n_nodes):
        for m in range(n_nodes):
            if n != m:
                A[n, m] = max(0.0, float(e[n] @ e[m]))
    deg = A.sum(1)
    Dt = torch.tensor([d if d > 1e-3 else 1.0 for d in deg.tolist()], dtype=torch.float64)
    L = torch.zeros(n_nodes, n_nodes, dtype=torch.float64)
    for n in range(n_nodes):
        for m in range(n_nodes):
            lap = (deg[n] if n == m else 0.0) - A[n, m]
            L[n, m] = lap / math.sqrt(Dt[n] * Dt[m])
    upd = (L @ g) @ wo.T  # (N, C)
    ref = torch.stack(nodes).double() + upd
    got = torch.cat([xi[0, :, :, 0].T, xj[0, :, :, 0].T]).double()
    assert torch.allclose(a[0].double(), A, atol=1e-6)
    assert torch.allclose(discrepancy_laplacian(a)[0].double(), L, atol=1e-6)
    assert torch.allclose(got, ref, atol=1e-5)


def test_degree_threshold_uses_one_for_isolated_nodes():
    a = torch.zeros(1, 3, 3)
    a[0, 0, 1] = a[0, 1, 0] = 0.5
    lap = discrepancy_laplacian(a)[0]
    assert lap[2].abs().sum() == 0  # isolated node: D~ = 1, row of D - A is zero
    assert torch.allclose(lap[0, 0], torch.tensor(1.0)) and torch.allclose(lap[0, 1],
                                                                           torch.tensor(-1.0))


def test_zero_init_conditional_maps_equal_individual_maps():
    torch.manual_seed(1)
    gcn = CorrespondenceGCN(32, reduction=16)
    x = torch.randn(3, 32, 4, 2)
    pi, pj = all_ordered_pairs(3)
    xi, xj = gcn(x, pi, pj)
    assert torch.equal(xi, x[pi]) and torch.equal(xj, x[pj])
    # but the branch is trainable: W_o receives a gradient
    (xi.sum() + xj.pow(2).sum()).backward()
    assert gcn.out.weight.grad.abs().sum() > 0


def test_projections_are_computed_once_per_image():
    gcn = CorrespondenceGCN(16, reduction=4)
    calls = []
    gcn.attend.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    x = torch.randn(4, 16, 3, 2)
    gcn(x, *all_ordered_pairs(4))
    assert calls == [4]  # one call over the 4 images, not 16 pairs


def test_mixed_up_id_loss_hand_computation():
    li = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    lj = torch.tensor([[0.0, 1.0, 0.0], [1.0, -1.0, 3.0]])
    yi, yj = torch.tensor([0, 2]), torch.tensor([1, 1])

    def ce(row, y):
        return -(row[y] - math.log(sum(math.exp(v) for v in row.tolist())))

    a = 0.9
    terms = []
    for p in range(2):
        terms.append(a * ce(li[p], yi[p]) + (1 - a) * ce(li[p], yj[p]))
        terms.append(a * ce(lj[p], yj[p]) + (1 - a) * ce(lj[p], yi[p]))
    ref = sum(terms) / len(terms)
    assert abs(mixed_up_id_loss(li, lj, yi, yj, alpha=a).item() - ref) < 1e-5


def test_pairwise_triplet_hand_computation():
    d = torch.tensor([[0.0, 0.2, 0.9, 0.1],
                      [0.3, 0.0, 0.4, 1.0],
                      [0.8, 0.5, 0.0, 0.7],
                      [0.6, 0.2, 0.9, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    # anchor 0: ap=max(0,.2)=.2, an=min(.9,.1)=.1 -> .6 ; anchor 1: ap=.3, an=.4 -> .4
    # anchor 2: ap=max(0,.7)=.7, an=min(.8,.5)=.5 -> .7 ; anchor 3: ap=.9, an=.2 -> 1.2
    ref = (0.6 + 0.4 + 0.7 + 1.2) / 4
    assert abs(pairwise_batch_hard_triplet(d, y, margin=0.5).item() - ref) < 1e-6
    valid = torch.ones(4, 4, dtype=torch.bool)
    valid[0, 3] = False  # anchor 0's hardest negative becomes 0.9 -> relu(.2-.9+.5)=0
    ref2 = (0.0 + 0.4 + 0.7 + 1.2) / 4
    assert abs(pairwise_batch_hard_triplet(d, y, 0.5, valid).item() - ref2) < 1e-6


def test_pairwise_triplet_equals_torchreid_batch_hard_on_plain_distances():
    import torchreid
    torch.manual_seed(2)
    f = torch.randn(8, 5)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    pi, pj = all_ordered_pairs(8)
    # f_{i|j} = f_i and f_{j|i} = f_j: D is the Euclidean matrix of the normalised features
    dist, valid = pair_distance_matrix(f[pi], f[pj], pi, pj, 8)
    assert valid.all()
    ours = pairwise_batch_hard_triplet(dist, y, margin=0.5)
    ref = torchreid.losses.TripletLoss(margin=0.5)(F.normalize(f, dim=1), y)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_sample_pairs_keeps_self_pairs():
    g = torch.Generator().manual_seed(0)
    pi, pj = sample_pairs(4, 9, generator=g)
    assert len(pi) == 9 and ((pi == pj).sum() == 4)
    assert len(set(zip(pi.tolist(), pj.tolist()))) == 9
    pi, pj = sample_pairs(4, 0)
    assert len(pi) == 16


def test_node_layout_equals_map_layout():
    torch.manual_seed(3)
    gcn = CorrespondenceGCN(8, reduction=2)
    torch.nn.init.normal_(gcn.out.weight)
    x = torch.randn(3, 8, 3, 2)
    pi, pj = all_ordered_pairs(3)
    mi, mj = gcn(x, pi, pj)
    ni, nj = gcn.forward_nodes(x, pi, pj)
    assert torch.allclose(ni, mi.flatten(2).transpose(1, 2))
    assert torch.allclose(nj, mj.flatten(2).transpose(1, 2))


@pytest.mark.parametrize('ties', [False, True])
def test_fast_avgmax_pooling_equals_pooling_the_dense_conditional_maps(ties):
    """The fast path (mean in the projected dimension, chunked max with sparse backward) against
    the straightforward formula: build X' densely, [mean || amax] over its nodes; values and
    gradients w.r.t. the maps and all three projections. ``ties``: W_o = 0 (as at
    initialisation) and an all-zero channel make some maxima tied (amax splits their gradient)."""
    torch.manual_seed(4)
    gcn = CorrespondenceGCN(16, reduction=4).double()
    x = torch.randn(3, 16, 3, 2, dtype=torch.float64).relu()
    x[2] = x[2].abs() + 0.1  # image 2 has no tied maxima of its own
    if ties:
        x[1, 5] = 0.0  # every node of channel 5 of image 1 is a maximum
        x[0, 3, :, 1] = x[0, 3].max()  # two maximal nodes in channel 3 of image 0
    else:
        torch.nn.init.normal_(gcn.out.weight)
    x.requires_grad_()
    pi, pj = all_ordered_pairs(3)
    w = torch.randn(2 * len(pi), 32, dtype=torch.float64)

    def grads(out):
        for p in [x, *gcn.parameters()]:
            p.grad = None
        (out * w).sum().backward()
        return [x.grad.clone()] + [p.grad.clone() for p in gcn.parameters()]

    xi, xj = gcn.forward_nodes(x, pi, pj)
    ref = torch.cat([torch.cat([xi.mean(1), xi.amax(1)], 1),
                     torch.cat([xj.mean(1), xj.amax(1)], 1)])
    n_max = torch.cat([(xi == xi.amax(1, keepdim=True)).sum(1),
                       (xj == xj.amax(1, keepdim=True)).sum(1)], 1).amax(1)
    tied_pairs = n_max > 1  # per pair
    assert bool(tied_pairs.any()) == ties and not tied_pairs.all()  # a mix when ties
    ref_grads = grads(ref)
    fi, fj = gcn.pooled_avgmax(x, pi, pj, chunk=2)  # 9 pairs: chunks mix tied and untied pairs
    fast = torch.cat([fi, fj])
    assert torch.allclose(fast, ref, atol=1e-12)
    with torch.no_grad():  # the inference path (max only, no autograd Function)
        assert torch.allclose(torch.cat(gcn.pooled_avgmax(x, pi, pj, chunk=4)), ref, atol=1e-12)
    for a, b in zip(grads(fast), ref_grads):
        assert torch.allclose(a, b, atol=1e-12)
    if ties:  # the tie rule matters: max(dim) (one winner) gives other gradients than amax
        xi, xj = gcn.forward_nodes(x, pi, pj)
        one = torch.cat([torch.cat([xi.mean(1), xi.max(1).values], 1),
                         torch.cat([xj.mean(1), xj.max(1).values], 1)])
        assert not all(torch.allclose(a, b) for a, b in zip(grads(one), ref_grads))


def test_attention_without_diagonal_mask_equals_masked_relu_gram():
    torch.manual_seed(5)
    gcn = CorrespondenceGCN(8, reduction=2)
    e, _ = gcn.project(torch.randn(3, 8, 2, 2))
    pi, pj = all_ordered_pairs(3)
    ep = torch.cat([e[pi], e[pj]], 1)
    ref = F.relu(ep @ ep.transpose(1, 2)) * (1 - torch.eye(8))
    a = gcn.attention(e, pi, pj)
    assert torch.equal(a.diagonal(dim1=1, dim2=2), torch.zeros(9, 8))
    assert torch.allclose(a, ref, atol=1e-6)
