"""clutter-shapes-cifar is written in the CIFAR-10 python format, balanced and reproducible."""
import pickle

import numpy as np

from mm_ext.datagen.clutter_shapes_cifar import LABEL_NAMES, generate


def _load(p):
    with open(p, 'rb') as f:
        return pickle.load(f, encoding='latin1')


def test_format_balance_and_seed(tmp_path):
    s = generate(tmp_path / 'a', seed=3, train_per_class=6, test_per_class=2, num_batches=2)
    assert s == {'num_train': 60, 'num_test': 20}
    root = tmp_path / 'a' / 'cifar-10-batches-py'
    meta = _load(root / 'batches.meta')
    assert meta['label_names'] == LABEL_NAMES and len(set(LABEL_NAMES)) == 10
    batches = [_load(root / f'data_batch_{i}') for i in (1, 2)]
    labels = sum((b['labels'] for b in batches), [])
    assert np.bincount(labels, minlength=10).tolist() == [6] * 10
    assert all(b['data'].dtype == np.uint8 and b['data'].shape[1] == 3072 for b in batches)
    test = _load(root / 'test_batch')
    assert np.bincount(test['labels'], minlength=10).tolist() == [2] * 10
    generate(tmp_path / 'b', seed=3, train_per_class=6, test_per_class=2, num_batches=2)
    assert np.array_equal(_load(tmp_path / 'b' / 'cifar-10-batches-py' / 'test_batch')['data'], test['data'])
    generate(tmp_path / 'c', seed=4, train_per_class=6, test_per_class=2, num_batches=2)
    assert not np.array_equal(_load(tmp_path / 'c' / 'cifar-10-batches-py' / 'test_batch')['data'], test['data'])
