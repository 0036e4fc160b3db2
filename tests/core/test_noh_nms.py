"""NOH-NMS family vs mmcv greedy and soft NMS, the per-box reference loop and hand-computed cases."""
import math

import pytest
import torch

from mm_ext.core.nms import adaptive_nms, noh_nms, thresholded_soft_nms
from mm_ext.core.nms.testing import clustered_detections, crowd_nms_reference


@pytest.fixture(autouse=True, params=['kernel', 'vectorised'])
def cpu_path(request, monkeypatch):
    """Every test runs on both CPU paths of ``noh_nms``: the compiled sequential kernel and the
    vectorised numpy rounds (two independent implementations of the same loop)."""
    from mm_ext.core.nms import _ckernel

    monkeypatch.setenv(_ckernel.ENV_VAR, '1' if request.param == 'kernel' else '0')
    if request.param == 'kernel':  # strict: a kernel that fails to build fails the tests
        assert _ckernel.load() is not None, 'the NOH-NMS CPU kernel did not build (see the warning)'
    return request.param


def _random_boxes(n, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    wh = 10 + torch.rand(n, 2, generator=g) * 60
    boxes = torch.cat([xy, xy + wh], 1).to(dtype)
    scores = torch.rand(n, generator=g).to(dtype) * 0.95 + 0.05
    return boxes, scores


# --- three pedestrians side by side: IoU(A, B) = IoU(B, C) = 7/13 > 0.5, IoU(A, C) = 1/4
A, B, C = [0., 0., 10., 20.], [3., 0., 13., 20.], [6., 0., 16., 20.]


def _three(noh_a, noh_b, scores=(0.9, 0.8, 0.2), p=(0.9, 0.9, 0.0)):
    boxes = torch.tensor([A, B, C])
    noh_boxes = torch.tensor([noh_a, noh_b, C])
    return boxes, torch.tensor(scores), torch.tensor(p), noh_boxes


def test_noh_nms_equals_mmcv_nms_when_noh_inactive():
    ops = pytest.importorskip('mmcv.ops')
    for seed in range(5):
        boxes, scores = _random_boxes(300, seed)
        g = torch.Generator().manual_seed(100 + seed)
        p = torch.rand(300, generator=g) * 0.3  # never > 0.3
        noh_boxes = boxes + torch.randn(300, 4, generator=g) * 5
        _, ref_keep = ops.nms(boxes, scores, 0.5)
        keep, out = noh_nms(boxes, scores, p, noh_boxes)
        assert torch.equal(keep, ref_keep)
        assert torch.equal(out, scores[ref_keep])


def test_noh_nms_equals_torchvision_nms_when_noh_disabled():
    tv = pytest.importorskip('torchvision')
    for seed in range(3):
        boxes, scores = _random_boxes(200, seed)
        keep, _ = noh_nms(boxes, scores, None, None, iou_threshold=0.4)
        assert torch.equal(keep, tv.ops.nms(boxes, scores, 0.4))


def test_noh_nms_rescues_neighbour_and_flag_blocks_chain():
    # A's hallucinated box is B shifted 2 px: offset (-0.2, 0, 0, 0) -> w = exp(-0.5) >= 0.6,
    # so B survives with 0.8 * w and is flagged; when B is picked its own NOH (pointing at C)
    # is therefore off and C is suppressed greedily.
    boxes, scores, p, noh_boxes = _three([5., 0., 15., 20.], C)
    keep, out = noh_nms(boxes, scores, p, noh_boxes)
    assert keep.tolist() == [0, 1]
    assert out.tolist() == pytest.approx([0.9, 0.8 * math.exp(-0.5)], rel=1e-6)


def test_noh_nms_unflagged_rescued_box_rescues_its_own_neighbour():
    # shift 3 px: offset -0.3 -> w = exp(-1.125) < 0.6: B survives decayed but unflagged,
    # then B's NOH (pointing exactly at C, w = 1) keeps C at its score.
    boxes, scores, p, noh_boxes = _three([6., 0., 16., 20.], C)
    keep, out = noh_nms(boxes, scores, p, noh_boxes)
    assert keep.tolist() == [0, 1, 2]
    assert out.tolist() == pytest.approx([0.9, 0.8 * math.exp(-1.125), 0.2], rel=1e-6)


def test_noh_nms_is_greedy_at_noh_threshold_and_drops_below_min_score():
    boxes, scores, p, noh_boxes = _three(B, C, p=(0.3, 0.3, 0.0))  # p must exceed 0.3
    keep, out = noh_nms(boxes, scores, p, noh_boxes)
    assert keep.tolist() == [0, 2] and out.tolist() == pytest.approx([0.9, 0.2])
    # hallucinated box far away: w ~ 0, B decays below min_score and is dropped
    boxes, scores, p, noh_boxes = _three([100., 0., 110., 20.], C)
    keep, _ = noh_nms(boxes, scores, p, noh_boxes)
    assert keep.tolist() == [0, 2]


def test_adaptive_nms_threshold_is_max_of_nt_and_density():
    boxes, scores = torch.tensor([A, B]), torch.tensor([0.9, 0.8])
    assert adaptive_nms(boxes, scores, torch.tensor([0.6, 0.0]))[0].tolist() == [0, 1]  # 7/13 < 0.6
    assert adaptive_nms(boxes, scores, torch.tensor([0.4, 0.9]))[0].tolist() == [0]  # max(0.5, 0.4)


def test_thresholded_soft_nms_hand_case():
    boxes, scores = torch.tensor([A, B, C]), torch.tensor([0.9, 0.8, 0.7])
    u = 7 / 13
    keep, out = thresholded_soft_nms(boxes, scores, method='linear')
    # A decays B (IoU u) and leaves C (IoU 1/4 <= Nt); C (0.7) > B (0.8 (1 - u)); C decays B again
    assert keep.tolist() == [0, 2, 1]
    assert out.tolist() == pytest.approx([0.9, 0.7, 0.8 * (1 - u) ** 2], rel=1e-6)
    keep, out = thresholded_soft_nms(boxes, scores, method='gaussian', sigma=0.5)
    assert out[-1].item() == pytest.approx(0.8 * math.exp(-u * u / 0.5) ** 2, rel=1e-6)


@pytest.mark.parametrize('method', ['noh', 'greedy', 'adaptive', 'soft_linear', 'soft_gaussian'])
def test_vectorised_ops_equal_reference_loop(method):
    for seed in range(3):
        for n in (60, 400):
            d = clustered_detections(n, seed=seed, dtype=torch.float64)
            b, s, p, o = d['boxes'], d['scores'], d['noh_scores'], d['noh_boxes']
            if method == 'noh':
                keep, out = noh_nms(b, s, p, o)
            elif method == 'greedy':
                keep, out = noh_nms(b, s, None, None)
            elif method == 'adaptive':
                keep, out = adaptive_nms(b, s, p)
            else:
                keep, out = thresholded_soft_nms(b, s, method=method[5:])
            ref_keep, ref_out = crowd_nms_reference(b, s, p, o, method=method)
            assert torch.equal(keep, ref_keep), (method, seed, n)
            assert torch.allclose(out, ref_out, rtol=1e-9, atol=1e-12)


def test_noh_nms_matches_reference_with_legacy_offset_and_other_constants():
    d = clustered_detections(300, seed=7, dtype=torch.float64)
    kw = dict(iou_threshold=0.4, noh_score_thr=0.5, sigma=0.3, flag_thr=0.5, min_score=0.05,
              legacy_iou_offset=True)
    keep, out = noh_nms(d['boxes'], d['scores'], d['noh_scores'], d['noh_boxes'], **kw)
    ref_keep, ref_out = crowd_nms_reference(d['boxes'], d['scores'], d['noh_scores'], d['noh_boxes'], **kw)
    assert torch.equal(keep, ref_keep) and torch.allclose(out, ref_out)


def test_noh_nms_float32_keeps_same_boxes_as_float64_reference():
    d = clustered_detections(500, seed=3)
    keep, out = noh_nms(d['boxes'], d['scores'], d['noh_scores'], d['noh_boxes'])
    ref_keep, ref_out = crowd_nms_reference(d['boxes'], d['scores'], d['noh_scores'], d['noh_boxes'])
    assert torch.equal(keep, ref_keep)
    assert out.dtype == torch.float32 and torch.allclose(out, ref_out, rtol=1e-5)


def test_noh_nms_guards_degenerate_boxes_and_nan():
    d = clustered_detections(80, seed=2, dtype=torch.float64)
    b, s, p, o = (d[k].clone() for k in ('boxes', 'scores', 'noh_scores', 'noh_boxes'))
    b[3, 2] = b[3, 0]  # zero width
    b[4, 2] = b[4, 0] - 5  # negative width
    o[5, 3] = o[5, 1]  # zero-height hallucinated box
    s[6] = float('nan')
    b[7, 1] = float('nan')
    b[8, 2] = float('inf')
    p[9] = float('nan')
    o[10, 0] = float('nan')
    keep, out = noh_nms(b, s, p, o)
    assert torch.isfinite(out).all()
    assert not {6, 7, 8} & set(keep.tolist())
    ref_keep, ref_out = crowd_nms_reference(b, s, p, o)
    assert torch.equal(keep, ref_keep) and torch.allclose(out, ref_out)


def test_noh_nms_ties_are_broken_by_lowest_index():
    boxes = torch.tensor([A, A, B, [50., 0., 60., 20.], [50., 0., 60., 20.]])
    scores = torch.full((5,), 0.5)
    keep, _ = noh_nms(boxes, scores, None, None)
    assert keep.tolist() == [0, 3]
    keep2, _ = noh_nms(boxes.flip(0), scores, None, None)
    assert keep2.tolist() == [0, 2]  # (flipped) lowest index wins again


def test_noh_nms_empty_input_and_max_num():
    e = torch.zeros(0, 4)
    keep, out = noh_nms(e, torch.zeros(0), torch.zeros(0), e)
    assert keep.shape == (0,) and keep.dtype == torch.long and out.shape == (0,)
    d = clustered_detections(200, seed=4)
    args = (d['boxes'], d['scores'], d['noh_scores'], d['noh_boxes'])
    full, full_s = noh_nms(*args, max_num=-1)
    assert len(full) > 5
    assert torch.equal(noh_nms(*args, max_num=0)[0], full)
    top, top_s = noh_nms(*args, max_num=5)
    assert torch.equal(top, full[:5]) and torch.equal(top_s, full_s[:5])
    assert torch.equal(noh_nms(*args, max_num=len(full))[0], full)  # the last box is not dropped


def test_noh_nms_rejects_bad_input_naming_the_field():
    b, s = _random_boxes(4, 0)
    with pytest.raises(ValueError, match='noh_boxes'):
        noh_nms(b, s, torch.rand(4), torch.rand(4, 5))
    with pytest.raises(ValueError, match='scores'):
        noh_nms(b, s[:, None], None, None)
    with pytest.raises(ValueError, match='together'):
        noh_nms(b, s, torch.rand(4), None)
    with pytest.raises(ValueError, match='sigma'):
        noh_nms(b, s, torch.rand(4), b, sigma=0)


@pytest.mark.cuda
def test_noh_nms_cuda_matches_cpu():
    d = clustered_detections(1000, seed=5)
    args = [d[k] for k in ('boxes', 'scores', 'noh_scores', 'noh_boxes')]
    keep, out = noh_nms(*args)
    keep_c, out_c = noh_nms(*[a.cuda() for a in args])
    assert keep_c.is_cuda and torch.equal(keep_c.cpu(), keep)
    assert torch.allclose(out_c.cpu(), out, rtol=1e-5)


@pytest.mark.parametrize('method', ['noh', 'adaptive', 'soft_gaussian', 'noh_classes'])
def test_torch_path_equals_numpy_path_on_cpu(monkeypatch, method):
    from mm_ext.core.nms import _rounds

    d = clustered_detections(400, seed=11)
    b, s, p, o = d['boxes'], d['scores'], d['noh_scores'], d['noh_boxes']

    def run():
        if method == 'noh':
            return noh_nms(b, s, p, o)
        if method == 'noh_classes':  # three classes in one call, some scores below min_score
            return noh_nms(b, s * 0.02, p, o, labels=torch.arange(len(b)) % 3)
        if method == 'adaptive':
            return adaptive_nms(b, s, p)
        return thresholded_soft_nms(b, s, method='gaussian')

    keep_np, out_np = run()
    monkeypatch.setattr(_rounds, 'FORCE_TORCH', True)
    keep_t, out_t = run()
    assert torch.equal(keep_np, keep_t) and torch.allclose(out_np, out_t)
    if method != 'noh_classes':
        ref_keep, _ = crowd_nms_reference(b, s, p, o, method=method)
        assert torch.equal(keep_t, ref_keep)


@pytest.mark.parametrize('fine_bands', [False, True])
@pytest.mark.parametrize('thr', [0.0, 0.3, 0.5, 0.8])
def test_overlap_pair_sweeps_equal_dense_iou(thr, fine_bands, monkeypatch):
    from mm_ext.core.nms import _rounds
    from mm_ext.core.nms._rounds import overlap_pairs, pairwise_iou

    if fine_bands:  # the two-band sweep of large inputs, on these small ones
        monkeypatch.setattr(_rounds, '_FINE_BANDS_FROM', 0)

    for seed in range(3):
        d = clustered_detections(300, seed=seed)
        boxes = torch.cat([d['boxes'], _random_boxes(50, seed)[0]])
        boxes[7, 2] = boxes[7, 0]  # a zero-width box overlaps nothing
        dense = torch.triu(pairwise_iou(boxes, boxes) > thr, diagonal=1)
        want = {tuple(p) for p in dense.nonzero().tolist()}
        for u, v, iou in (overlap_pairs(boxes, thr), overlap_pairs(boxes.numpy(), thr)):
            u, v = torch.as_tensor(u), torch.as_tensor(v)
            got = set(zip(torch.minimum(u, v).tolist(), torch.maximum(u, v).tolist()))
            assert got == want and len(u) == len(want)
            assert torch.allclose(torch.as_tensor(iou), pairwise_iou(boxes, boxes)[u, v])


def test_batched_crowd_nms_runs_each_class_alone():
    from mm_ext.core.nms import batched_crowd_nms

    d = clustered_detections(300, seed=8)
    b, s, p, o = d['boxes'], d['scores'], d['noh_scores'], d['noh_boxes']
    labels = torch.arange(300) % 3
    keep, out = batched_crowd_nms(b, s, labels, p, o, method='noh', max_num=50)  # one call, all classes
    parts = []
    for c in range(3):
        idx = (labels == c).nonzero().squeeze(1)
        k, f = noh_nms(b[idx], s[idx], p[idx], o[idx])
        parts += list(zip(f.tolist(), idx[k].tolist()))
    parts.sort(key=lambda t: (-t[0], t[1]))
    assert keep.tolist() == [i for _, i in parts[:50]]
    assert out.tolist() == pytest.approx([f for f, _ in parts[:50]])
    with pytest.raises(ValueError, match='noh_scores'):
        batched_crowd_nms(b, s, labels, method='adaptive')


def test_first_pick_is_kept_below_min_score_like_the_official_loop():
    boxes, scores = torch.tensor([A, [50., 0., 60., 20.], B]), torch.tensor([0.004, 0.008, 0.006])
    for fn in (lambda **k: noh_nms(boxes, scores, None, None, **k),
               lambda **k: thresholded_soft_nms(boxes, scores, **k),
               lambda **k: adaptive_nms(boxes, scores, torch.zeros(3), **k)):
        keep, out = fn()
        assert keep.tolist() == [1] and out.tolist() == pytest.approx([0.008])  # the rest: < 0.01
        assert fn(keep_first_pick=False)[0].tolist() == []
    ref_keep, _ = crowd_nms_reference(boxes, scores, method='greedy')
    assert ref_keep.tolist() == [1]
    # per class: each class keeps its own first pick
    keep, _ = noh_nms(boxes, scores, None, None, labels=torch.tensor([0, 1, 0]))
    assert keep.tolist() == [1, 2]


def test_ops_accept_tensors_that_require_grad():
    d = clustered_detections(100, seed=1)
    args = [d[k].clone().requires_grad_(True) for k in ('boxes', 'scores', 'noh_scores', 'noh_boxes')]
    keep, out = noh_nms(*args)
    ref_keep, ref_out = noh_nms(*[a.detach() for a in args])
    assert torch.equal(keep, ref_keep) and torch.equal(out, ref_out)
    assert len(thresholded_soft_nms(args[0], args[1])[0]) > 0 and len(adaptive_nms(args[0], args[1], args[2])[0]) > 0


@pytest.mark.parametrize('method', ['linear', 'gaussian'])
def test_soft_nms_equals_mmcv_soft_nms(method):
    """mmcv's soft_nms: linear decay above the threshold (= the official thresholded
    variant), Gaussian decay of every overlapping box (= thresholded at IoU 0)."""
    ops = pytest.importorskip('mmcv.ops')
    for seed in range(4):
        d = clustered_detections(300, seed=20 + seed)
        b, s = d['boxes'], d['scores']
        dets, ref_keep = ops.soft_nms(b, s, iou_threshold=0.5, sigma=0.5, min_score=0.01, method=method)
        keep, out = thresholded_soft_nms(b, s, iou_threshold=0.5 if method == 'linear' else 0.0, method=method,
                                         sigma=0.5, min_score=0.01)
        assert torch.equal(keep, ref_keep.long())
        assert torch.allclose(out, dets[:, 4], rtol=1e-5, atol=1e-7)


def test_batched_crowd_nms_class_agnostic_and_bad_method():
    from mm_ext.core.nms import batched_crowd_nms

    d = clustered_detections(200, seed=9)
    b, s, p, o = d['boxes'], d['scores'], d['noh_scores'], d['noh_boxes']
    keep, out = batched_crowd_nms(b, s, None, p, o, method='noh')
    ref_keep, ref_out = noh_nms(b, s, p, o)
    assert torch.equal(keep, ref_keep) and torch.equal(out, ref_out)
    with pytest.raises(ValueError, match='unknown crowd NMS method'):
        batched_crowd_nms(b, s, None, method='soft')


def test_convert_detectron2_noh_renames_and_refuses_unknown_keys():
    from mm_ext.core.nms.convert import convert_detectron2_noh

    sd = {'module.backbone.bottom_up.res2.0.conv1.norm.running_var': torch.ones(3),
          'backbone.fpn_lateral3.weight': torch.zeros(2, 2, 1, 1),
          'roi_heads.overlap_predictor.overlap_prob.bias': torch.zeros(1), 'pixel_mean': torch.zeros(3, 1, 1)}
    out, dropped = convert_detectron2_noh(sd)
    assert set(out) == {'backbone.layer1.0.bn1.running_var', 'backbone.layer1.0.bn1.num_batches_tracked',
                        'neck.lateral_convs.1.conv.weight', 'roi_head.bbox_head.fc_noh_score.bias'}
    assert dropped == ['pixel_mean'] and torch.equal(out['backbone.layer1.0.bn1.running_var'], torch.ones(3))
    with pytest.raises(ValueError, match='res6'):
        convert_detectron2_noh({'backbone.bottom_up.res6.0.conv1.weight': torch.zeros(1)})
