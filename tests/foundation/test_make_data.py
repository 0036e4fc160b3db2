import hashlib
import pickle

import numpy as np
import pytest

from mm_ext.datagen import DATASETS, make_dataset


def _digest(folder):
    h = hashlib.sha256()
    for f in sorted(folder.rglob('*')):
        if f.is_file() and not f.name.startswith('.'):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def test_digits_cifar_is_cifar_format_and_reproducible(tmp_path):
    a = make_dataset('digits-cifar', root=tmp_path / 'a', seed=0)
    b = make_dataset('digits-cifar', root=tmp_path / 'b', seed=0)
    c = make_dataset('digits-cifar', root=tmp_path / 'c', seed=1)
    assert _digest(a) == _digest(b) != _digest(c)
    base = a / 'cifar-10-batches-py'
    labels = []
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        with open(base / name, 'rb') as f:
            entry = pickle.load(f, encoding='latin1')
        assert entry['data'].dtype == np.uint8 and entry['data'].shape[1] == 3072
        assert len(entry['labels']) == entry['data'].shape[0]
        labels += entry['labels']
    assert len(labels) == 1797 and sorted(set(labels)) == list(range(10))
    with open(base / 'batches.meta', 'rb') as f:
        assert len(pickle.load(f, encoding='latin1')['label_names']) == 10


def test_make_dataset_is_idempotent_and_atomic(tmp_path, monkeypatch):
    out = make_dataset('digits-cifar', root=tmp_path)
    mtime = (out / 'cifar-10-batches-py' / 'test_batch').stat().st_mtime_ns
    assert make_dataset('digits-cifar', root=tmp_path) == out
    assert (out / 'cifar-10-batches-py' / 'test_batch').stat().st_mtime_ns == mtime
    with pytest.raises(FileExistsError, match='--force'):
        make_dataset('digits-cifar', root=tmp_path, seed=5)

    import mm_ext.datagen.digits_cifar as gen

    def broken(out_dir, seed=0, **kw):
        (out_dir / 'half-written').write_text('x')
        raise RuntimeError('generator failed')

    monkeypatch.setattr(gen, 'generate', broken)
    with pytest.raises(RuntimeError):
        make_dataset('digits-cifar', root=tmp_path / 'fresh')
    assert list((tmp_path / 'fresh').iterdir()) == []


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(KeyError, match='digits-cifar'):
        make_dataset('nope')
    assert set(DATASETS) >= {'digits-cifar', 'synth-crowd', 'scene-bias-video', 'synth-ped'}


def test_generated_cifar10_reads_it_with_mmpretrain(tmp_path):
    import mm_ext.mmpretrain  # noqa: F401
    from mmpretrain.registry import DATASETS as PT_DATASETS
    from mmengine.registry import DefaultScope
    root = make_dataset('digits-cifar', root=tmp_path)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ds = PT_DATASETS.build(dict(type='GeneratedCIFAR10', data_root=str(root), split='test',
                                    pipeline=[]))
    assert len(ds) == 297
    assert ds.metainfo['classes'][3] == 'digit_3'
    with open(root / 'cifar-10-batches-py' / 'test_batch', 'rb') as f:
        raw = pickle.load(f, encoding='latin1')
    img0 = raw['data'][0].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(ds[0]['img'], img0) and ds[0]['gt_label'] == raw['labels'][0]
    with pytest.raises(FileNotFoundError, match='make_data.py digits-cifar'), \
            DefaultScope.overwrite_default_scope('mmpretrain'):
        PT_DATASETS.build(dict(type='GeneratedCIFAR10', data_root=str(tmp_path / 'missing'),
                               split='test', pipeline=[]))
