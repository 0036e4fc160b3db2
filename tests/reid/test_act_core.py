"""ACT core: Jaccard distance vs torchreid's re_ranking, eps / DBSCAN / outliers on hand-built
cases, per-sample triplet vs torchreid's TripletLoss, small-loss selection."""
import math

import numpy as np
import pytest
import torch
import torchreid
from sklearn.cluster import DBSCAN

from reid_ext.cluster import dbscan_labels
from reid_ext.core.clustering import cluster_purity, eps_from_distances, label_outliers
from reid_ext.core.coteaching import (batch_hard_triplet_per_sample, num_remember,
                                      remember_rate, small_loss_indices)
from reid_ext.core.jaccard import act_distance, k_reciprocal_jaccard, source_distance


def _clustered(n, dim=16, per_id=4, noise=0.7, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n // per_id, dim, generator=g, dtype=torch.float64)
    return centres.repeat_interleave(per_id, 0) + noise * torch.randn(n, dim, generator=g,
                                                                      dtype=torch.float64)


def _exact_dist(x):
    """Symmetric float32 Euclidean distances with an exact zero diagonal."""
    d = ((x[:, None] - x[None]) ** 2).sum(-1).sqrt().float()
    return (d + d.t()) / 2


def _torchreid_jaccard(dist, k1, k2):
    """The (N, N) Jaccard matrix (off-diagonal) assembled from torchreid's re_ranking(lambda=0).

    re_ranking(q_g, q_q, g_g) returns the query x gallery block of the Jaccard distance over the
    union of query and gallery. Splitting the N samples by each bit of their index, with both
    roles, covers every ordered pair i != j while every call sees all N samples.
    """
    n = dist.shape[0]
    d = dist.numpy()
    full = np.full((n, n), np.nan, dtype=np.float32)
    idx = np.arange(n)
    for bit in range(int(math.ceil(math.log2(n)))):
        a = idx[(idx >> bit) & 1 == 1]
        b = idx[(idx >> bit) & 1 == 0]
        for q, g in ((a, b), (b, a)):
            block = torchreid.utils.re_ranking(d[np.ix_(q, g)], d[np.ix_(q, q)], d[np.ix_(g, g)],
                                               k1=k1, k2=k2, lambda_value=0.0)
            full[np.ix_(q, g)] = block
    return full


@pytest.mark.parametrize('n,k1,k2', [(48, 20, 6), (40, 7, 3), (36, 5, 1), (44, 9, 2)])
def test_jaccard_matches_torchreid_re_ranking(n, k1, k2):
    dist = _exact_dist(_clustered(n, seed=n + k1))
    ref = _torchreid_jaccard(dist, k1, k2)
    ours = k_reciprocal_jaccard(dist, k1, k2, precomputed=True).numpy()
    off = ~np.eye(n, dtype=bool)
    assert not np.isnan(ref[off]).any()
    np.testing.assert_allclose(ours[off], ref[off], atol=1e-5)
    np.testing.assert_allclose(np.diag(ours), 0.0, atol=1e-5)  # m(i, i) = sum V(i) = 1
    assert (ref[off] < 0.999).mean() > 0.05  # the case has real neighbourhoods, not all ones


def test_jaccard_chunked_and_from_features():
    x = _clustered(52, seed=3)
    dist = _exact_dist(x)
    whole = k_reciprocal_jaccard(dist, 20, 6, precomputed=True)
    chunked = k_reciprocal_jaccard(dist, 20, 6, precomputed=True, chunk_bytes=600)
    feats = k_reciprocal_jaccard(x.float(), 20, 6)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)
    torch.testing.assert_close(feats, whole, atol=1e-5, rtol=0)


def test_jaccard_rejects_bad_input():
    with pytest.raises(ValueError, match='square'):
        k_reciprocal_jaccard(torch.rand(5, 6), precomputed=True)
    with pytest.raises(ValueError, match='at least'):
        k_reciprocal_jaccard(torch.rand(10, 4), k1=20)


def test_act_distance_adds_source_term():
    t = _clustered(40, seed=5).float()
    src = torch.randn(30, 16)
    tn, sn = torch.nn.functional.normalize(t, dim=1), torch.nn.functional.normalize(src, dim=1)
    d2 = ((tn[:, None] - sn[None]) ** 2).sum(-1)
    s = (1 - torch.exp(-d2)).min(dim=1).values
    s = s / s.max()
    torch.testing.assert_close(source_distance(tn, sn), s, atol=1e-6, rtol=0)
    expect = 0.9 * k_reciprocal_jaccard(tn, 20, 6) + 0.1 * (s[:, None] + s[None, :])
    torch.testing.assert_close(act_distance(t, src, lam=0.1), expect, atol=1e-5, rtol=0)


def test_eps_is_mean_of_smallest_nonzero_upper_pairs():
    d = torch.tensor([[0.0, 0.5, 0.0, 0.9, 0.7],
                      [0.5, 0.0, 0.2, 0.6, 0.8],
                      [0.0, 0.2, 0.0, 0.3, 0.4],
                      [0.9, 0.6, 0.3, 0.0, 0.1],
                      [0.7, 0.8, 0.4, 0.1, 0.0]])
    # upper pairs: 0.5 0 0.9 0.7 / 0.2 0.6 0.8 / 0.3 0.4 / 0.1 -> 9 non-zero (the 0 is dropped)
    # rho = 0.3: round(2.7) = 3 smallest: 0.1 0.2 0.3
    assert eps_from_distances(d, rho=0.3) == pytest.approx(0.2)
    # rho = 0.5: round(4.5) = 4 (half to even): 0.1 0.2 0.3 0.4
    assert eps_from_distances(d, rho=0.5) == pytest.approx(0.25)


def test_eps_matches_sorting_reference():
    d = torch.rand(300, 300)
    d = (d + d.t()) / 2
    tri = np.sort(d.numpy()[np.triu_indices(300, 1)])
    ref = tri[:int(round(1.6e-3 * tri.size))].mean()
    assert eps_from_distances(d) == pytest.approx(float(ref), rel=1e-6)


def test_dbscan_hand_built_case_and_outlier_labels():
    # 1-D points: a group of 4 at 0..0.3, a group of 5 at 5..5.4, isolated 2.5 and 9
    pos = torch.tensor([0.0, 0.1, 0.2, 0.3, 5.0, 5.1, 5.2, 5.3, 5.4, 2.5, 9.0])
    dist = (pos[:, None] - pos[None]).abs()
    labels = dbscan_labels(dist, eps=0.35, min_samples=4)
    np.testing.assert_array_equal(labels, [0, 0, 0, 0, 1, 1, 1, 1, 1, -1, -1])
    dense = DBSCAN(eps=0.35, min_samples=4, metric='precomputed').fit_predict(dist.numpy())
    np.testing.assert_array_equal(labels, dense)


def test_dbscan_sparse_input_matches_dense_sklearn():
    dist = k_reciprocal_jaccard(_clustered(80, seed=9).float(), 20, 6)
    eps = eps_from_distances(dist, rho=0.02)
    dense = DBSCAN(eps=eps, min_samples=4, metric='precomputed').fit_predict(dist.double().numpy())
    np.testing.assert_array_equal(dbscan_labels(dist, eps), dense)
    assert (dense >= 0).any()


def test_outliers_take_nearest_inlier_label_on_normalised_features():
    feats = torch.tensor([[2.0, 0.0], [0.0, 0.5], [0.6, 0.4], [0.4, 0.6]])
    labels = torch.tensor([0, 1, -1, -1])
    # (0.6, 0.4) is nearer (0, 0.5) in raw space but nearer (2, 0) after L2 normalisation
    assert label_outliers(feats, labels).tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match='outlier'):
        label_outliers(feats, torch.full((4,), -1))


def test_cluster_purity_hand_case():
    pred = [0, 0, 0, 1, 1, -1]
    truth = [5, 5, 7, 7, 7, 5]
    assert cluster_purity(pred, truth) == pytest.approx(4 / 5)


def test_per_sample_triplet_mean_is_torchreid_triplet():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(16, 8, generator=g)
    labels = torch.arange(4).repeat_interleave(4)
    per = batch_hard_triplet_per_sample(feats, labels, margin=0.5)
    ref = torchreid.losses.TripletLoss(margin=0.5)(feats, labels)
    assert per.shape == (16,)
    torch.testing.assert_close(per.mean(), ref, atol=1e-6, rtol=1e-6)


def test_remember_rate_schedule_reaches_one():
    assert [round(remember_rate(t), 10) for t in range(10)] == [
        0.28, 0.36, 0.44, 0.52, 0.6, 0.68, 0.76, 0.84, 0.92, 1.0]
    with pytest.raises(ValueError):
        remember_rate(10)


def test_small_loss_selection_keeps_exactly_rt_lowest():
    losses = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7, 0.0, 0.8, 0.2, 0.6, 0.4,
                           1.5, 1.1, 1.3, 1.2, 1.4, 1.9, 1.7, 1.6, 1.8, 2.0,
                           2.5, 2.1, 2.3, 2.2, 2.4])
    # R_1 = 0.36 of 25 = 9 exactly (the float product is 8.999...)
    assert num_remember(25, remember_rate(1)) == 9
    idx = small_loss_indices(losses, remember_rate(1))
    assert idx.tolist() == [5, 1, 7, 3, 9, 2, 8, 4, 6]
    assert len(small_loss_indices(losses, 1.0)) == 25
    assert num_remember(64, remember_rate(0)) == 17  # floor(0.28 * 64 = 17.92)
