"""Clip-consistent augmentation transforms of the video-SSL pipeline."""
import numpy as np
import pytest

pytest.importorskip('mmaction')

import mm_ext.mmaction  # noqa: F401,E402
from mmaction.registry import TRANSFORMS  # noqa: E402


def _clip(t=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(20, 200, (8, 8, 3)).astype(np.uint8) for _ in range(t)]


def test_color_jitter_brightness_is_one_factor_per_clip():
    jit = TRANSFORMS.build(dict(type='VideoSSLColorJitter', brightness=0.5, contrast=0,
                                saturation=0, hue=0))
    imgs = _clip()
    out = jit(dict(imgs=list(imgs)))['imgs']
    ratios = [o / i.astype(np.float32) for o, i in zip(out, imgs)]
    f = ratios[0].flat[0]
    assert 0.5 <= f <= 1.5
    for r in ratios:  # the same factor for every pixel of every frame (no clipping: max 200*1.5)
        assert np.allclose(r, f, atol=1e-5)


def test_color_jitter_hue_any_sign_and_saturation_zero_is_gray():
    np.random.seed(0)
    jit = TRANSFORMS.build(dict(type='VideoSSLColorJitter', brightness=0.5, contrast=0.5,
                                saturation=0.25, hue=0.5))
    for _ in range(10):  # negative hue shifts overflowed in mmaction's ColorJitter on numpy 2
        out = jit(dict(imgs=_clip()))['imgs']
        assert out[0].shape == (8, 8, 3) and 0 <= min(o.min() for o in out)
        assert max(o.max() for o in out) <= 255
    gray = TRANSFORMS.build(dict(type='VideoSSLColorJitter', saturation=1.0))
    gray._draw = lambda: (np.array([2, 0, 1, 3]), 1.0, 1.0, 0.0, 0.0)  # saturation factor 0
    out = gray(dict(imgs=_clip()))['imgs']
    assert np.allclose(out[0][..., 0], out[0][..., 1], atol=1e-3)
    with pytest.raises(ValueError, match='hue'):
        TRANSFORMS.build(dict(type='VideoSSLColorJitter', hue=0.7))


def test_random_rotation_same_angle_for_all_frames():
    rot = TRANSFORMS.build(dict(type='VideoSSLRandomRotation', max_angle=10))
    frame = _clip(1)[0]
    out = rot(dict(imgs=[frame.copy(), frame.copy(), frame.copy()]))['imgs']
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[1], out[2])
    none = TRANSFORMS.build(dict(type='VideoSSLRandomRotation', max_angle=0))
    assert np.array_equal(none(dict(imgs=[frame.copy()]))['imgs'][0], frame)


def test_sample_frames_errors_and_keys():
    with pytest.raises(ValueError, match='clip_len'):
        TRANSFORMS.build(dict(type='VideoSSLSampleFrames', clip_len=0))
    s = TRANSFORMS.build(dict(type='VideoSSLSampleFrames', clip_len=4, frame_interval=2, seed=0))
    r = s(dict(total_frames=30, start_index=1))
    a, n = r['frame_inds'][:4], r['frame_inds'][4:]
    assert np.all(np.diff(a) == 2) and np.all(np.diff(n) == 2)  # no wrap needed for 30 frames
    assert abs(int(a[0]) - int(n[0])) >= 2 and a.min() >= 1  # 1-based start_index applied
    assert r['num_clips'] == 2 and 'min_offset=2' in repr(s)
