"""reid_ext.core.evaluate_rank_fast against torchreid's evaluate_rank (its Python path)."""
import numpy as np
import pytest
import torch

from reid_ext.core import evaluate_rank_fast

import torchreid  # noqa: E402  (a missing host fails, CI is strict)


def _reference(distmat, qp, gp, qc, gc, max_rank=50, cuhk03=False, seed=0):
    np.random.seed(seed)
    if cuhk03 and not hasattr(np, 'bool'):  # torchreid's eval_cuhk03 uses np.bool (numpy < 1.24)
        np.bool = bool
        try:
            return torchreid.metrics.evaluate_rank(distmat, qp, gp, qc, gc, max_rank=max_rank,
                                                   use_metric_cuhk03=True)
        finally:
            del np.bool
    return torchreid.metrics.evaluate_rank(distmat, qp, gp, qc, gc, max_rank=max_rank,
                                           use_metric_cuhk03=cuhk03)


def _ours(distmat, qp, gp, qc, gc, max_rank=50, cuhk03=False, seed=0, **kw):
    np.random.seed(seed)
    return evaluate_rank_fast(distmat, qp, gp, qc, gc, max_rank=max_rank,
                              use_metric_cuhk03=cuhk03, **kw)


def _real_shaped(seed, nq=120, ng=900, nid=60, dim=16, noise=1.3, dtype=np.float32):
    """Clustered features (identity centres + noise), 6 cameras, distractors with pid 0."""
    rng = np.random.RandomState(seed)
    qp = rng.randint(1, nid + 1, nq)
    gp = np.concatenate([rng.randint(1, nid + 1, ng - ng // 8), np.zeros(ng // 8, np.int64)])
    qc, gc = rng.randint(0, 6, nq), rng.randint(0, 6, ng)
    centres = rng.randn(nid + 1, dim)
    qf = torch.from_numpy(centres[qp] + noise * rng.randn(nq, dim)).float()
    gf = torch.from_numpy(centres[gp] + noise * rng.randn(ng, dim)).float()
    d = torchreid.metrics.compute_distance_matrix(qf, gf, 'euclidean').numpy().astype(dtype)
    return d, qp, gp, qc, gc


def _random(seed, nq=50, ng=300, nid=30):
    rng = np.random.RandomState(seed)
    return (rng.rand(nq, ng).astype(np.float64), rng.randint(0, nid, nq), rng.randint(0, nid, ng),
            rng.randint(0, 3, nq), rng.randint(0, 3, ng))


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
@pytest.mark.parametrize('make', [_random, _real_shaped])
@pytest.mark.parametrize('cuhk03', [False, True])
def test_evaluate_rank_fast_equals_torchreid(seed, make, cuhk03):
    args = make(seed)
    cmc_ref, map_ref = _reference(*args, cuhk03=cuhk03, seed=seed)
    cmc, mAP = _ours(*args, cuhk03=cuhk03, seed=seed)
    assert cmc.dtype == np.float32 and cmc.shape == cmc_ref.shape
    np.testing.assert_array_equal(cmc, cmc_ref)
    assert mAP == pytest.approx(map_ref, rel=1e-12, abs=0)


@pytest.mark.parametrize('seed', [0, 1])
def test_evaluate_rank_fast_ties_follow_numpy_argsort(seed):
    d, qp, gp, qc, gc = _real_shaped(seed, nq=80, ng=600)
    d = np.round(d, 0).astype(np.float32)  # many exact ties between positives and negatives
    cmc_ref, map_ref = _reference(d, qp, gp, qc, gc)
    cmc, mAP = _ours(d, qp, gp, qc, gc, chunk_elems=1000)  # also exercises chunking
    np.testing.assert_array_equal(cmc, cmc_ref)
    assert mAP == pytest.approx(map_ref, rel=1e-12, abs=0)


def test_evaluate_rank_fast_hand_computed():
    # one query (pid 1, cam 0); gallery sorted by distance: neg, pos, junk (same pid+cam), pos
    d = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)
    gp, gc = np.array([2, 1, 1, 1]), np.array([1, 1, 0, 2])
    cmc, mAP = evaluate_rank_fast(d, [1], gp, [0], gc, max_rank=3)
    # kept order: neg, pos, pos -> positives at ranks 1, 2 (0-based): AP = (1/2 + 2/3) / 2
    np.testing.assert_array_equal(cmc, np.array([0, 1, 1], np.float32))
    assert mAP == pytest.approx((1 / 2 + 2 / 3) / 2, rel=1e-15)


def test_evaluate_rank_fast_skips_queries_without_match_and_accepts_tensors():
    d = torch.tensor([[0.3, 0.1], [0.5, 0.2]])
    # query 0's only same-pid item shares its camera (junk) -> skipped; query 1 matches at rank 1
    cmc, mAP = evaluate_rank_fast(d, torch.tensor([1, 2]), torch.tensor([1, 2]),
                                  torch.tensor([0, 0]), torch.tensor([0, 1]))
    np.testing.assert_array_equal(cmc, np.array([1, 1], np.float32))
    assert mAP == 1.0


def test_evaluate_rank_fast_bad_input():
    with pytest.raises(ValueError, match='all query identities do not appear in gallery'):
        evaluate_rank_fast(np.zeros((1, 2)), [1], [1, 2], [0], [0, 0])
    with pytest.raises(ValueError, match='g_camids'):
        evaluate_rank_fast(np.zeros((1, 2)), [1], [1, 2], [0], [0])
