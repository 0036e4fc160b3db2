"""``clutter-shapes-cifar``: ten shape classes in clutter, written as CIFAR-10 python batches.

A set on which small networks stay well below the ceiling (digits-cifar sits at ~99 %), so that
training-recipe effects (grafting, distillation) can show. Each 32x32 image holds one target shape
(disk, square, triangle, plus, ring, stripes, T, L-corner, two dots, crescent) under a random affine
distortion (rotation within +-46 degrees, anisotropic scale, shear), random colour and position, drawn over a smooth
random-colour background with 3-5 clutter strokes and blobs, partial occlusion by a background-
coloured patch, pixel noise and a per-image contrast change. Few samples per class (default 150
train, 100 test). Written exactly like ``cifar-10-batches-py/`` (``data_batch_1..5``,
``test_batch``, ``batches.meta``), read by ``GeneratedCIFAR10``.
"""
import os
import pickle
from pathlib import Path

import numpy as np

LABEL_NAMES = ['disk', 'square', 'triangle', 'plus', 'ring', 'stripes', 't_shape', 'l_corner', 'two_dots',
               'crescent']
S = 32


def _shape_mask(label: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Soft mask in [0, 1] of class ``label`` in shape coordinates (u, v) (unit size ~ [-1, 1])."""
    r = np.sqrt(u * u + v * v)
    if label == 0:
        d = r - 0.8
    elif label == 1:
        d = np.maximum(np.abs(u), np.abs(v)) - 0.7
    elif label == 2:
        d = np.maximum.reduce([v - 0.6, -0.866 * u - 0.5 * v - 0.35, 0.866 * u - 0.5 * v - 0.35])
    elif label == 3:
        d = np.minimum(np.maximum(np.abs(u) - 0.25, np.abs(v) - 0.85), np.maximum(np.abs(v) - 0.25,
                                                                                 np.abs(u) - 0.85))
    elif label == 4:
        d = np.abs(r - 0.65) - 0.18
    elif label == 5:
        d = np.maximum(np.maximum(np.abs(u), np.abs(v)) - 0.8, -np.cos(v * 3 * np.pi) * 0.15)
    elif label == 6:
        d = np.minimum(np.maximum(np.abs(u) - 0.22, np.abs(v + 0.1) - 0.75),
                       np.maximum(np.abs(v - 0.6) - 0.22, np.abs(u) - 0.8))
    elif label == 7:
        d = np.minimum(np.maximum(np.abs(u + 0.45) - 0.25, np.abs(v) - 0.8),
                       np.maximum(np.abs(v - 0.55) - 0.25, np.abs(u) - 0.7))
    elif label == 8:
        d = np.minimum(np.sqrt((u - 0.45) ** 2 + v * v), np.sqrt((u + 0.45) ** 2 + v * v)) - 0.33
    else:
        d = np.maximum(r - 0.8, 0.6 - np.sqrt((u - 0.35) ** 2 + v * v))
    return np.clip(0.5 - d * 8, 0, 1)  # ~1/8 unit soft edge


def _affine_coords(rng, cx, cy, scale, max_rot=np.pi, aniso=(0.75, 1.3), max_shear=0.35):
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64) + 0.5
    x, y = (xx - cx) / scale, (yy - cy) / scale
    th = rng.uniform(-max_rot, max_rot)
    sx, sy = rng.uniform(*aniso, size=2)
    sh = rng.uniform(-max_shear, max_shear)
    c, s = np.cos(th), np.sin(th)
    u = (c * x + s * y) / sx
    v = (-s * x + c * y) / sy
    return u + sh * v, v


def _background(rng):
    base = rng.uniform(0.1, 0.45, size=3)
    coarse = rng.normal(0, 0.1, size=(3, 4, 4))
    up = np.kron(coarse, np.ones((8, 8)))
    k = np.ones(5) / 5  # smooth the blocks
    for ax in (1, 2):
        up = np.apply_along_axis(lambda m: np.convolve(m, k, mode='same'), ax, up)
    return np.clip(base[:, None, None] + up, 0, 1)


def _clutter(rng, img):
    for _ in range(rng.integers(3, 6)):
        col = rng.uniform(0.3, 1.0, size=3)
        if rng.random() < 0.5:  # a stroke
            yy, xx = np.mgrid[0:S, 0:S] + 0.5
            p = rng.uniform(0, S, size=2)
            th = rng.uniform(0, np.pi)
            dist = np.abs((xx - p[0]) * np.sin(th) - (yy - p[1]) * np.cos(th))
            along = np.abs((xx - p[0]) * np.cos(th) + (yy - p[1]) * np.sin(th))
            m = np.clip(rng.uniform(0.8, 1.6) - dist, 0, 1) * (along < rng.uniform(4, 12))
        else:  # a blob
            u, v = _affine_coords(rng, *rng.uniform(0, S, size=2), rng.uniform(2, 4.5))
            m = np.clip(0.5 - (np.sqrt(u * u + v * v) - 0.8) * 4, 0, 1)
        a = rng.uniform(0.4, 0.8) * m
        img[:] = img * (1 - a) + col[:, None, None] * a


def _render(rng, label):
    img = _background(rng)
    _clutter(rng, img)
    cx, cy = rng.uniform(13, 19, size=2)
    u, v = _affine_coords(rng, cx, cy, rng.uniform(8, 11), max_rot=0.8, aniso=(0.8, 1.2), max_shear=0.25)
    m = _shape_mask(label, u, v)
    bgmean = img.mean(axis=(1, 2))
    col = rng.uniform(0.55, 1.0, size=3)  # a light shape on a darker background
    col[rng.integers(3)] = rng.uniform(0.8, 1.0)
    a = rng.uniform(0.75, 1.0) * m
    img = img * (1 - a) + col[:, None, None] * a
    if rng.random() < 0.6:  # occlude a patch with background colour
        h, w = rng.integers(6, 14, size=2)
        y0, x0 = rng.integers(0, S - h), rng.integers(0, S - w)
        img[:, y0:y0 + h, x0:x0 + w] = bgmean[:, None, None] + rng.normal(0, 0.05, size=(3, 1, 1))
    img = (img - 0.5) * rng.uniform(0.6, 1.2) + 0.5 + rng.uniform(-0.1, 0.1)
    img = img + rng.normal(0, 0.04, size=img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def _dump(obj, path: Path) -> None:
    tmp = path.with_name(path.name + '.part')
    with open(tmp, 'wb') as f:
        pickle.dump(obj, f, protocol=2)
    os.replace(tmp, path)


def generate(out_dir, seed: int = 0, train_per_class: int = 150, test_per_class: int = 100,
             num_batches: int = 5) -> dict:
    """Write ``out_dir/cifar-10-batches-py``.

    Args:
        out_dir (Path): destination (created).
        seed (int): everything (shapes, clutter, order). Defaults to 0.
        train_per_class (int): training images per class. Defaults to 150.
        test_per_class (int): test images per class. Defaults to 100.
        num_batches (int): number of training batch files. Defaults to 5.

    Returns:
        dict: ``num_train``, ``num_test``.
    """
    if train_per_class < num_batches or test_per_class < 1:
        raise ValueError(f'clutter-shapes-cifar: train_per_class ({train_per_class}) must be >= num_batches '
                         f'({num_batches}) and test_per_class ({test_per_class}) >= 1')
    rng = np.random.default_rng(seed)
    root = Path(out_dir) / 'cifar-10-batches-py'
    root.mkdir(parents=True, exist_ok=True)

    def make(per_class, tag):
        labels = rng.permutation(np.repeat(np.arange(10), per_class))
        data = np.stack([_render(rng, int(y)) for y in labels]).reshape(len(labels), -1)
        names = [f'{tag}_{i:05d}_{LABEL_NAMES[y]}.png' for i, y in enumerate(labels)]
        return data, labels, names

    xtr, ytr, ntr = make(train_per_class, 'train')
    xte, yte, nte = make(test_per_class, 'test')
    for b, idx in enumerate(np.array_split(np.arange(len(ytr)), num_batches), start=1):
        _dump({'batch_label': f'training batch {b} of {num_batches}', 'labels': ytr[idx].tolist(),
               'data': xtr[idx], 'filenames': [ntr[i] for i in idx]}, root / f'data_batch_{b}')
    _dump({'batch_label': 'testing batch 1 of 1', 'labels': yte.tolist(), 'data': xte, 'filenames': nte},
          root / 'test_batch')
    _dump({'label_names': LABEL_NAMES, 'num_cases_per_batch': len(ytr) // num_batches, 'num_vis': 3072},
          root / 'batches.meta')
    return {'num_train': int(len(ytr)), 'num_test': int(len(yte))}
