"""The compiled CPU kernel of NOH-NMS (``mm_ext.core.nms._ckernel``): equal to the vectorised
numpy path and the per-box reference loop; its build is cached, atomic and optional.

(tests/core/test_noh_nms.py runs all its tests on both CPU paths.)"""
import pytest
import torch

from mm_ext.core.nms import noh_nms
from mm_ext.core.nms.testing import clustered_detections, crowd_nms_reference


def _kernel_cases():
    """Inputs for the kernel-vs-vectorised comparison: crowds and uniform boxes, both dtypes,
    labels, thresholds, min_score, degenerate and non-finite values."""
    g = torch.Generator().manual_seed(0)
    for k in range(24):
        dtype = (torch.float32, torch.float64)[k % 2]
        n = (1, 2, 60, 700)[k % 4] if k < 20 else 0
        d = clustered_detections(max(n, 1), seed=k, dtype=dtype)
        b, s, p, o = d['boxes'][:n], d['scores'][:n], d['noh_scores'][:n], d['noh_boxes'][:n]
        if k % 3 == 1:
            xy, wh = torch.rand(n, 2, generator=g) * 200, 10 + torch.rand(n, 2, generator=g) * 60
            b, s = torch.cat([xy, xy + wh], 1).to(dtype), (0.05 + 0.95 * torch.rand(n, generator=g)).to(dtype)
        if k % 5 == 2 and n > 20:
            b, s, p, o = b.clone(), s.clone(), p.clone(), o.clone()
            b[3, 2] = b[3, 0]  # empty
            s[4] = float('nan')
            b[5, 0] = float('inf')
            p[6] = float('nan')
            o[7, 1] = float('nan')
            s[8:12] = s[0]  # ties
        kw = dict(iou_threshold=(0.5, 0.0, 0.3, 0.8)[k % 4], min_score=(0.01, 0.0, 0.3)[k % 3],
                  keep_first_pick=k % 7 != 3, legacy_iou_offset=k % 4 == 1, max_num=(-1, 7)[k % 6 == 5])
        if k % 4 == 3:
            kw['labels'] = torch.randint(0, 3, (n,), generator=g)
        yield k, (b, s, p, o) if k % 8 != 6 else (b, s, None, None), kw


def test_kernel_equals_vectorised_path(monkeypatch):
    from mm_ext.core.nms import _ckernel

    for k, args, kw in _kernel_cases():
        keep, out = noh_nms(*args, **kw)
        monkeypatch.setenv(_ckernel.ENV_VAR, '0')
        keep_v, out_v = noh_nms(*args, **kw)
        monkeypatch.setenv(_ckernel.ENV_VAR, '1')
        assert torch.equal(keep, keep_v), k
        assert out.dtype == out_v.dtype == args[1].dtype
        tol = dict(rtol=1e-5, atol=1e-7) if out.dtype == torch.float32 else dict(rtol=1e-12, atol=1e-15)
        assert torch.allclose(out, out_v, **tol), k
        if 'labels' not in kw and kw['min_score'] > 0 and len(args[0]) <= 100:
            ref_keep, ref_out = crowd_nms_reference(*args, **{a: v for a, v in kw.items()})
            assert torch.equal(keep, ref_keep), k


def _fresh_kernel_state(monkeypatch, tmp_path, **env):
    from mm_ext.core import _cbuild
    from mm_ext.core.nms import _ckernel

    monkeypatch.setattr(_cbuild, '_loaded', {})  # forget the loaded kernel (restored afterwards)
    monkeypatch.setenv('MM_EXT_CACHE', str(tmp_path))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return _ckernel


def test_kernel_build_failure_falls_back_with_a_warning(monkeypatch, tmp_path):
    d = clustered_detections(300, seed=12)
    args = [d[k] for k in ('boxes', 'scores', 'noh_scores', 'noh_boxes')]
    want = noh_nms(*args)
    ck = _fresh_kernel_state(monkeypatch, tmp_path, CC='false')  # a "compiler" that always fails
    with pytest.warns(RuntimeWarning, match="kernel 'noh_nms' is unavailable"):
        got = noh_nms(*args)
    assert ck.load() is None and torch.equal(got[0], want[0]) and torch.allclose(got[1], want[1])
    assert not list((tmp_path / 'kernels').glob('*'))  # nothing half-written left behind


def test_kernel_build_is_cached_and_atomic(monkeypatch, tmp_path):
    ck = _fresh_kernel_state(monkeypatch, tmp_path)
    assert ck.load() is not None
    built = list((tmp_path / 'kernels').iterdir())
    assert len(built) == 1 and built[0].suffix == '.so'  # no temporary file left
    ck = _fresh_kernel_state(monkeypatch, tmp_path, CC='false')  # cached: no compiler needed
    assert ck.load() is not None and list((tmp_path / 'kernels').iterdir()) == built


@pytest.mark.parametrize('fine_bands', [False, True])
@pytest.mark.parametrize('thr', [0.0, 0.3, 0.5, 0.8])
def test_kernel_pair_sweep_equals_dense_iou(thr, fine_bands):
    """The kernel's banded sweep finds exactly the pairs of the dense IoU matrix (one band below
    2,500 boxes, two from there: both on crowds, uniform boxes, boxes of equal x1 in many bands,
    duplicates, an empty box and three classes)."""
    from mm_ext.core.nms import _ckernel
    from mm_ext.core.nms._rounds import pairwise_iou

    g = torch.Generator().manual_seed(int(thr * 10))
    for seed in range(2):
        n = 2600 if fine_bands else 300
        d = clustered_detections(n, seed=seed, dtype=(torch.float32, torch.float64)[seed])
        xy, wh = torch.rand(50, 2, generator=g) * 200, torch.rand(50, 2, generator=g) * 60
        y = torch.arange(0, 800, 10.0)[:, None]  # a column of equal x1 across bands: ties between bands
        column = torch.cat([torch.full_like(y, 500.0), y, torch.full_like(y, 540.0), y + 100], 1)
        boxes = torch.cat([d['boxes'], torch.cat([xy, xy + wh], 1), column, column[:5]]).to(d['boxes'].dtype)
        boxes[7, 2] = boxes[7, 0]  # a zero-width box overlaps nothing
        labels = torch.randint(0, 3, (len(boxes),), generator=g)
        iou = pairwise_iou(boxes, boxes, legacy_offset=seed == 1)
        for lab in (None, labels):
            dense = iou > thr
            if lab is not None:
                dense &= lab[:, None] == lab[None, :]
            want = {tuple(p) for p in torch.triu(dense, diagonal=1).nonzero().tolist()}
            uv = _ckernel.overlap_pairs_numpy(boxes.numpy(), thr, legacy_offset=seed == 1,
                                              labels=None if lab is None else lab.numpy())
            got = list(zip(*uv.tolist()))
            assert len(got) == len(set(got)) and set(got) == want, (thr, seed, lab is None)


def test_kernel_is_thread_safe():
    """ctypes releases the GIL: four threads call the kernel at once (per-thread work buffers of
    different sizes); every result equals the same call made alone."""
    from concurrent.futures import ThreadPoolExecutor

    inputs = []
    for k in range(8):
        d = clustered_detections((200, 1500)[k % 2], seed=30 + k)
        inputs.append([d[key] for key in ('boxes', 'scores', 'noh_scores', 'noh_boxes')])
    want = [noh_nms(*args) for args in inputs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            got = list(pool.map(lambda args: noh_nms(*args), inputs))
            for (k1, s1), (k2, s2) in zip(want, got):
                assert torch.equal(k1, k2) and torch.equal(s1, s2)
