"""Disturbance ops of DSM and BE/TBE against hand-computed / independent references."""
import math

import numpy as np
import pytest
import torch

from mm_ext.core.video import (background_erasing, push_warp, reverse_time,
                               sample_anchor_and_negative, temporal_eda, tps_transform, tps_solve,
                               tps_warp, window_indices)
from mm_ext.core.video.spatial_disturbance import push_displacement, tps_control_points


def test_background_erasing_hand_computed():
    # B=2, C=1, T=3, H=W=1: frame values are easy to mix by hand
    x = torch.tensor([[1., 2., 4.], [10., 20., 30.]]).view(2, 1, 3, 1, 1)
    orig = x.clone()
    out, lam, idx = background_erasing(x, lam=torch.tensor(0.25), frame_index=torch.tensor([2, 0]))
    # clip 0: static frame 4 -> 0.75 * [1, 2, 4] + 0.25 * 4
    exp0 = [0.75 * 1 + 1.0, 0.75 * 2 + 1.0, 0.75 * 4 + 1.0]
    # clip 1: static frame 10 -> 0.75 * [10, 20, 30] + 2.5
    exp1 = [7.5 + 2.5, 15 + 2.5, 22.5 + 2.5]
    assert torch.allclose(out.view(2, 3), torch.tensor([exp0, exp1]))
    assert torch.equal(x, orig)  # not in place
    assert lam.tolist() == [0.25, 0.25] and idx.tolist() == [2, 0]


def test_background_erasing_draws():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, 6, 6)
    lams = []
    for _ in range(50):
        out, lam, idx = background_erasing(x, generator=g)
        assert torch.all(lam == lam[0])  # one draw per batch (release)
        assert ((idx >= 0) & (idx < 5)).all()
        lams.append(lam[0].item())
        # each output frame is an affine mix of the same clip's frame and its static frame
        for b in range(4):
            ref = (1 - lam[b]) * x[b] + lam[b] * x[b, :, idx[b]:idx[b] + 1]
            assert torch.allclose(out[b], ref, atol=1e-6)
    assert 0 <= min(lams) and max(lams) < 0.3 and max(lams) > 0.15
    _, lam, _ = background_erasing(x, per_sample=True, generator=g)
    assert len(set(lam.tolist())) == 4


def test_background_erasing_static_frame_from_next_clip():
    x = torch.tensor([[1., 2.], [10., 20.], [100., 200.]]).view(3, 1, 2, 1, 1)
    out, _, _ = background_erasing(x, lam=torch.tensor(0.5), frame_index=torch.tensor([1, 0, 0]),
                                   source='next')
    # clip b mixes with frame idx[b] of clip (b + 1) mod 3
    # clip 0: .5 * [1, 2] + .5 * 20; clip 1: .5 * [10, 20] + .5 * 100; clip 2: .5 * [100, 200] + .5
    assert out.view(3, 2).tolist() == [[10.5, 11.], [55., 60.], [50.5, 100.5]]
    with pytest.raises(ValueError, match='source'):
        background_erasing(x, source='other')


def test_background_erasing_bad_input():
    with pytest.raises(ValueError, match='frame_index'):
        background_erasing(torch.zeros(1, 1, 3, 2, 2), frame_index=torch.tensor([3]))
    with pytest.raises(ValueError, match='B, C, T, H, W'):
        background_erasing(torch.zeros(3, 2, 2))


def test_tps_identity_when_jitter_zero():
    x = torch.randn(2, 3, 4, 9, 11)
    out, src = tps_warp(x, grid_size=5, jitter=0.0)
    assert torch.allclose(out, x, atol=1e-5)


def test_tps_matches_scipy_thin_plate_rbf():
    scipy_interp = pytest.importorskip('scipy.interpolate')
    g = torch.Generator().manual_seed(1)
    ctrl = tps_control_points(5, dtype=torch.float64)
    src = ctrl + (torch.rand(25, 2, generator=g, dtype=torch.float64) * 2 - 1) * 0.1
    pts = torch.rand(40, 2, generator=g, dtype=torch.float64) * 2 - 1
    ours = tps_transform(pts, ctrl, tps_solve(ctrl, src[None]))[0]
    rbf = scipy_interp.RBFInterpolator(ctrl.numpy(), src.numpy(), kernel='thin_plate_spline',
                                       degree=1, smoothing=0.0)
    assert np.allclose(ours.numpy(), rbf(pts.numpy()), atol=1e-8)
    # interpolation property: the control points map to the jittered sources
    assert torch.allclose(tps_transform(ctrl, ctrl, tps_solve(ctrl, src[None]))[0], src, atol=1e-8)


def test_tps_warp_samples_at_spline():
    # nearest sampling of an image whose pixel value encodes its own coordinates
    h = w = 17
    g = torch.Generator().manual_seed(2)
    ctrl = tps_control_points(5)
    src = ctrl + (torch.rand(25, 2, generator=g) * 2 - 1) * 0.1
    xs = torch.arange(w, dtype=torch.float32).view(1, w).expand(h, w)
    img = xs.reshape(1, 1, 1, h, w)
    out, _ = tps_warp(img, source_points=src)
    lin = torch.linspace(-1, 1, w)
    gy, gx = torch.meshgrid(lin, lin, indexing='ij')
    f = tps_transform(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1), ctrl,
                      tps_solve(ctrl, src[None]))[0]
    exp_x = ((f[:, 0].clamp(-1, 1) + 1) / 2 * (w - 1)).view(h, w)  # bilinear of a linear ramp
    assert torch.allclose(out[0, 0, 0], exp_x, atol=1e-3)
    # same warp in every frame (motion kept)
    vid = torch.randn(1, 2, 3, h, w)
    o, _ = tps_warp(vid, source_points=src)
    o2, _ = tps_warp(vid[:, :, 1:2], source_points=src)
    assert torch.allclose(o[:, :, 1:2], o2, atol=1e-6)


def test_tps_warp_is_differentiable():
    x = torch.randn(1, 1, 2, 8, 8, requires_grad=True)
    out, _ = tps_warp(x, generator=torch.Generator().manual_seed(0))
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def _push_loop_reference(img, cx, cy, dx, dy):
    """Per-pixel Python loop (as in the release) with explicit bilinear sampling."""
    h, w = img.shape
    out = img.clone()
    norm = math.hypot(dx, dy)
    for y in range(h):
        for x in range(w):
            if abs(x - cx) < 3 * abs(dx) and abs(y - cy) < 3 * abs(dy):
                d = math.hypot(x - cx - dx, y - cy - dy)
                hh = 0.5 / (3 * (d / norm) ** 4 + 1)
                sx = min(max(x - hh * dx, 0), w - 1)
                sy = min(max(y - hh * dy, 0), h - 1)
                x0, y0 = int(math.floor(sx)), int(math.floor(sy))
                x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
                ax, ay = sx - x0, sy - y0
                out[y, x] = ((1 - ax) * (1 - ay) * img[y0, x0] + ax * (1 - ay) * img[y0, x1]
                             + (1 - ax) * ay * img[y1, x0] + ax * ay * img[y1, x1])
    return out


def test_push_warp_matches_pixel_loop():
    g = torch.Generator().manual_seed(3)
    img = torch.rand(20, 24, generator=g, dtype=torch.float64)
    pushes = [(9.0, 8.0, 2.5, 3.0), (12.37, 10.15, 2.1, 2.7)]
    ref = img
    for p in pushes:
        ref = _push_loop_reference(ref, *p)
    params = torch.zeros(1, 3, 5, dtype=torch.float64)
    for i, p in enumerate(pushes):
        params[0, i, :4] = torch.tensor(p)
        params[0, i, 4] = 1
    out, _ = push_warp(img.view(1, 1, 1, 20, 24), params=params)
    assert torch.allclose(out[0, 0, 0], ref, atol=1e-9)
    assert not torch.allclose(out[0, 0, 0], img)


def test_push_displacement_zero_outside_window():
    d = push_displacement(torch.tensor([[10., 10., 2., 2.]]), 30, 30)
    assert d[0, 0, 0].abs().sum() == 0 and d[0, 29, 29].abs().sum() == 0
    assert d[0, 12, 12].abs().sum() > 0  # at c + s the push is maximal: 0.5 * s
    assert torch.allclose(d[0, 12, 12], torch.tensor([-1., -1.]))


def test_push_warp_random_draw_shapes():
    x = torch.randn(2, 3, 4, 32, 32)
    out, params = push_warp(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and params.shape == (2, 3, 5)
    assert torch.equal(params[0], params[1])  # one draw per batch
    assert 1 <= params[0, :, 4].sum() <= 3


def test_window_indices_wrap():
    assert window_indices(5, 4, 2, 10).tolist() == [5, 7, 9, 1]


def test_anchor_negative_min_offset_and_range():
    rng = np.random.default_rng(0)
    for n in (6, 10, 40, 100):
        for _ in range(200):
            s, s2 = sample_anchor_and_negative(n, 8, 1, min_offset=2, rng=rng)
            assert 0 <= s <= max(n - 8, 0) and 0 <= s2 < n
            if n > 4:
                assert abs(s2 - s) >= 2
    with pytest.raises(ValueError, match='num_frames'):
        sample_anchor_and_negative(0, 8)


def test_temporal_eda_and_reverse():
    x = torch.arange(10.).view(1, 1, 10, 1, 1)
    sw = temporal_eda(x, 0.1, 'swap', torch.Generator().manual_seed(0))
    assert sorted(sw.view(-1).tolist()) == list(range(10))  # a permutation of the frames
    ins = temporal_eda(x, 0.2, 'insert', torch.Generator().manual_seed(0)).view(-1).tolist()
    assert len(ins) == 10 and ins == sorted(ins) and len(set(ins)) < 10  # duplicates, order kept
    assert reverse_time(x).view(-1).tolist() == list(range(9, -1, -1))
    with pytest.raises(ValueError, match='mode'):
        temporal_eda(x, 0.1, 'shuffle')
