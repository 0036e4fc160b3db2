"""PI-ReID metric: official top-100 protocol (skip rules) and full-gallery protocol."""
import numpy as np
import pytest
import torchreid

from reid_ext.core.pi_metric import pi_evaluate


def test_pi_protocol_hand_built_lists():
    # gallery 0..59; crop 3 holds pids [7, 9], crop 10 holds [7], crop 20 holds [9, 7] seen by cam 1
    g_pids = [[100 + i] for i in range(60)]
    g_pids[3], g_pids[10], g_pids[20] = [7, 9], [7], [9, 7]
    g_cams = [2] * 60
    g_cams[20] = 1
    base = list(range(60))
    r0 = [1, 3, 2, 10] + [i for i in base if i not in (1, 3, 2, 10)]  # positives at ranks 2, 4
    r1 = [20, 0, 3] + [i for i in base if i not in (20, 0, 3)]      # crop 20: same cam -> removed
    r2 = [i for i in base if i not in (3, 10, 20)]                   # no positive -> skipped
    out = pi_evaluate([r0, r1, r2], [7, 7, 7], [1, 1, 1], g_pids, g_cams, topk=100, min_len=50)
    # q0: hits at ranks 2 and 4 -> AP = (1/2 + 2/4) / 2; 20 (cam 1, pid 7) removed does not
    # change ranks before it; positive 20 sits at rank 21 in r0 -> removed (same camera)
    ap0 = (1 / 2 + 2 / 4) / 2
    # q1: crop 20 removed -> [0, 3, ...]: crop 3 rank 2, crop 10 at rank 10 - 2 = ...
    r1f = [i for i in r1 if i != 20]
    hits = [k + 1 for k, i in enumerate(r1f) if i in (3, 10)]
    ap1 = (1 / hits[0] + 2 / hits[1]) / 2
    assert out['num_valid'] == 2 and out['skipped_no_positive'] == 1 and out['skipped_short'] == 0
    assert out['mAP'] == pytest.approx((ap0 + ap1) / 2)
    assert out['rank1'] == 0.0 and out['cmc'][1] == 1.0


def test_pi_protocol_top100_and_short_list_rules():
    n = 150
    g_pids = [[1000 + i] for i in range(n)]
    g_pids[5], g_pids[120] = [3], [3]
    g_cams = [2] * n
    r = list(range(n))
    # only the positive found in the top-100 counts: AP = 1/6 over 1 found positive
    out = pi_evaluate([r], [3], [1], g_pids, g_cams)
    assert out['mAP'] == pytest.approx(1 / 6)
    # full-gallery protocol counts both positives
    full = pi_evaluate([r], [3], [1], g_pids, g_cams, protocol='full')
    assert full['mAP'] == pytest.approx((1 / 6 + 2 / 121) / 2)
    # a list of 49 entries is skipped, 50 is kept
    with pytest.raises(ValueError, match='shorter than 50'):
        pi_evaluate([r[:49]], [3], [1], g_pids, g_cams)
    assert pi_evaluate([r[:50]], [3], [1], g_pids, g_cams)['num_valid'] == 1
    # the minimum length counts after removing same-camera positives
    g_cams[5] = 1
    with pytest.raises(ValueError, match='shorter'):
        pi_evaluate([r[:50]], [3], [1], g_pids, g_cams)


def test_full_protocol_equals_torchreid_on_single_pid_gallery():
    rng = np.random.default_rng(0)
    q, g = 12, 40
    q_pids, g_pids = rng.integers(0, 6, q), rng.integers(0, 6, g)
    q_cams, g_cams = rng.integers(0, 3, q), rng.integers(0, 3, g)
    dist = rng.random((q, g))
    ours = pi_evaluate([np.argsort(d) for d in dist], q_pids, q_cams, [[p] for p in g_pids],
                       g_cams, protocol='full', max_rank=10)
    cmc, mAP = torchreid.metrics.evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=10,
                                               use_cython=False)
    assert ours['mAP'] == pytest.approx(mAP)
    np.testing.assert_allclose(ours['cmc'], cmc)
