"""CIFAR-10/100 python batches (``cifar-10-batches-py/data_batch_N``, ``test_batch``, ``batches.meta``)."""
import os.path as osp
import pickle
from typing import Optional, Sequence

import numpy as np

from .errors import DataFormatError, MissingDataFileError

__all__ = ['check_cifar_batch', 'check_cifar_folder']

_HINT = ("a CIFAR python batch is a pickled dict with 'data' (uint8 array N x 3072: 1024 R, 1024 G, 1024 B "
         "values of a 32x32 image per row) and 'labels' (CIFAR-10) or 'fine_labels' (CIFAR-100), N ints")


def _load(path):
    if not osp.isfile(path):
        raise MissingDataFileError(path, path, problem='batch file does not exist')
    try:
        with open(path, 'rb') as f:
            return pickle.load(f, encoding='latin1')
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a format error
        raise DataFormatError(path, f'cannot be unpickled ({type(e).__name__}: {e}); truncated or not a CIFAR '
                              'batch', hint=_HINT) from None


def check_cifar_batch(path, num_classes: Optional[int] = None) -> int:
    """Check one data batch. Returns the number of images."""
    entry = _load(path)
    if not isinstance(entry, dict):
        raise DataFormatError(path, f'expected a dict, got {type(entry).__name__}', hint=_HINT)
    keys = {k.decode() if isinstance(k, bytes) else k for k in entry}
    if 'data' not in keys:
        raise DataFormatError(path, f'missing (keys: {sorted(keys)})', field='data', hint=_HINT)
    label_key = 'labels' if 'labels' in keys else 'fine_labels' if 'fine_labels' in keys else None
    if label_key is None:
        raise DataFormatError(path, f"missing 'labels'/'fine_labels' (keys: {sorted(keys)})", field='labels',
                              hint=_HINT)
    data = entry.get('data', entry.get(b'data'))
    labels = entry.get(label_key, entry.get(label_key.encode()))
    arr = np.asarray(data)
    if arr.ndim != 2 or arr.shape[1] != 3072:
        raise DataFormatError(path, f'expected shape (N, 3072) (3 x 32 x 32 per row), got {arr.shape}',
                              field='data', hint=_HINT)
    if arr.dtype != np.uint8:
        raise DataFormatError(path, f'expected dtype uint8, got {arr.dtype}', field='data', hint=_HINT)
    try:
        lab = np.asarray(labels)
    except Exception:  # noqa: BLE001
        lab = np.asarray([])
    if lab.ndim != 1 or len(lab) != arr.shape[0] or not np.issubdtype(lab.dtype, np.integer):
        raise DataFormatError(path, f'expected {arr.shape[0]} integer labels (one per data row), got '
                              f'{"shape " + str(lab.shape) if lab.ndim else repr(labels)} of {lab.dtype}',
                              field=label_key, hint=_HINT)
    if len(lab) and (lab.min() < 0 or (num_classes is not None and lab.max() >= num_classes)):
        raise DataFormatError(path, f'labels must lie in [0, {num_classes}), got min {lab.min()} max {lab.max()}',
                              field=label_key)
    return int(arr.shape[0])


def check_cifar_folder(folder, files: Sequence[str], meta_file: Optional[str] = 'batches.meta',
                       meta_key: str = 'label_names') -> None:
    """Check ``files`` (batch names) and the meta file in ``folder`` (``.../cifar-10-batches-py``)."""
    num_classes = None
    if meta_file:
        mpath = osp.join(folder, meta_file)
        meta = _load(mpath)
        names = meta.get(meta_key) if isinstance(meta, dict) else None
        if not isinstance(names, (list, tuple)) or not names:
            raise DataFormatError(mpath, f'expected a non-empty list of class names, got {names!r}', field=meta_key)
        num_classes = len(names)
    for name in files:
        check_cifar_batch(osp.join(folder, name), num_classes)
