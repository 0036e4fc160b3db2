"""``digits-cifar``: scikit-learn's 8x8 handwritten digits as CIFAR-10 python batches.

Real data (1,797 scanned digits, UCI "optdigits", shipped inside scikit-learn),
upscaled to 32x32, tinted to 3 channels and written exactly like
``cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``, ``batches.meta``:
pickled dicts with ``data`` (N, 3072) uint8 in channel-major order, ``labels``,
``filenames``, ``batch_label``), so mmpretrain's stock ``CIFAR10`` reader and any
CIFAR-10 loader read it unchanged.
"""
import os
import pickle
from pathlib import Path

import numpy as np

LABEL_NAMES = [f'digit_{i}' for i in range(10)]


def _upscale(img8: np.ndarray, size: int = 32) -> np.ndarray:
    """Bilinear 8x8 -> size x size for float images in [0, 1]."""
    src = np.linspace(0, 7, size)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, 7)
    w = src - i0
    rows = img8[i0, :] * (1 - w)[:, None] + img8[i1, :] * w[:, None]
    return rows[:, i0] * (1 - w)[None, :] + rows[:, i1] * w[None, :]


def _dump(obj, path: Path) -> None:
    tmp = path.with_name(path.name + '.part')
    with open(tmp, 'wb') as f:
        pickle.dump(obj, f, protocol=2)
    os.replace(tmp, path)


def generate(out_dir, seed: int = 0, num_test: int = 297, num_batches: int = 5) -> dict:
    """Write ``out_dir/cifar-10-batches-py``.

    Args:
        out_dir (Path): destination (created).
        seed (int): split, tint and order. Defaults to 0.
        num_test (int): images in ``test_batch``. Defaults to 297 (the rest,
            1,500, go to the training batches).
        num_batches (int): number of training batches. Defaults to 5.

    Returns:
        dict: ``num_train``, ``num_test``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    images, labels = images[order], labels[order]
    n = len(labels)
    if not 0 < num_test < n:
        raise ValueError(f'num_test must be in (0, {n}), got {num_test}')

    # foreground/background colours per image: a mild, label-independent tint
    fg = rng.uniform(0.6, 1.0, size=(n, 3)).astype(np.float32)
    bg = rng.uniform(0.0, 0.3, size=(n, 3)).astype(np.float32)
    data = np.empty((n, 3, 32, 32), dtype=np.uint8)
    for k in range(n):
        up = np.clip(_upscale(images[k]), 0, 1)
        rgb = bg[k][:, None, None] * (1 - up)[None] + fg[k][:, None, None] * up[None]
        data[k] = np.round(rgb * 255).astype(np.uint8)
    flat = data.reshape(n, -1)

    root = Path(out_dir) / 'cifar-10-batches-py'
    root.mkdir(parents=True, exist_ok=True)
    test_idx = np.arange(num_test)
    train_idx = np.arange(num_test, n)

    def batch(idx, name):
        return {
            'batch_label': name,
            'labels': labels[idx].tolist(),
            'data': flat[idx],
            'filenames': [f'digit_{int(i):04d}.png' for i in order[idx]],
        }

    for b, idx in enumerate(np.array_split(train_idx, num_batches), start=1):
        _dump(batch(idx, f'training batch {b} of {num_batches}'), root / f'data_batch_{b}')
    _dump(batch(test_idx, 'testing batch 1 of 1'), root / 'test_batch')
    _dump({'label_names': LABEL_NAMES, 'num_cases_per_batch': len(train_idx) // num_batches,
           'num_vis': 3072}, root / 'batches.meta')
    return {'num_train': int(len(train_idx)), 'num_test': int(num_test)}
