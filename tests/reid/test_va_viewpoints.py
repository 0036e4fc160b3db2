"""VA-reID viewpoint labels: a missing file is an error naming the option; several source
datasets merge their files (file names may repeat across datasets)."""
import pickle

import pytest

from reid_ext.datasets.side_labels import resolve_viewpoint_labels


def _write(path, table):
    path.write_bytes(pickle.dumps({k: (v, 'x') for k, v in table.items()}))
    return str(path)


# two sources with the SAME file names (Market-style naming) and different viewpoints
TRAIN = [('/d/a/0001_c1s1_000001_00.jpg', 0, 0, 0), ('/d/a/0002_c2s1_000002_00.jpg', 1, 1, 0),
         ('/d/b/0001_c1s1_000001_00.jpg', 2, 6, 1), ('/d/b/0003_c3s1_000003_00.jpg', 3, 7, 1)]


def test_several_sources_merge_their_files(tmp_path):
    fa = _write(tmp_path / 'a.pkl', {'0001_c1s1_000001_00.jpg': 0, '0002_c2s1_000002_00.jpg': 1,
                                     'unused.jpg': 2})
    fb = _write(tmp_path / 'b.pkl', {'0001_c1s1_000001_00.jpg': 2, '0003_c3s1_000003_00.jpg': 1})
    labels = resolve_viewpoint_labels(TRAIN, ['src_a', 'src_b'], [fa, fb])
    assert labels.lookup([it[0] for it in TRAIN]).tolist() == [0, 1, 2, 1]
    # '' = the dataset's own file (as synth-ped ships one)
    own = {'src_a': fa, 'src_b': fb}
    labels = resolve_viewpoint_labels(TRAIN, ['src_a', 'src_b'], ['', fb], default_file=own.get)
    assert labels.lookup([it[0] for it in TRAIN]).tolist() == [0, 1, 2, 1]
    labels = resolve_viewpoint_labels(TRAIN, ['src_a', 'src_b'], [], default_file=own.get)
    assert labels.lookup([it[0] for it in TRAIN]).tolist() == [0, 1, 2, 1]
    # one file for all sources (keys by file name: both 0001 images get its label)
    fab = _write(tmp_path / 'ab.pkl', {'0001_c1s1_000001_00.jpg': 2, '0002_c2s1_000002_00.jpg': 0,
                                       '0003_c3s1_000003_00.jpg': 1})
    labels = resolve_viewpoint_labels(TRAIN, ['src_a', 'src_b'], fab)
    assert labels.lookup([it[0] for it in TRAIN]).tolist() == [2, 0, 2, 1]


def test_missing_viewpoint_file_is_an_error_naming_the_option(tmp_path):
    fa = _write(tmp_path / 'a.pkl', {'0001_c1s1_000001_00.jpg': 0, '0002_c2s1_000002_00.jpg': 1})
    for files in ([], [fa, '']):  # no file at all / none for the second source
        with pytest.raises(FileNotFoundError, match="source dataset.*'src_b'.*va_reid.view_label_file"
                                                    '.*fallback_classifier'):
            resolve_viewpoint_labels(TRAIN, ['src_a', 'src_b'], files, default_file=lambda n: '')
    with pytest.raises(FileNotFoundError, match='view_label_file'):
        resolve_viewpoint_labels(TRAIN, ['src_a', 'src_b'], [fa, str(tmp_path / 'nope.pkl')])
    with pytest.raises(ValueError, match='2 entries for 3 source'):
        resolve_viewpoint_labels(TRAIN, ['a', 'b', 'c'], [fa, fa])


def test_unlabelled_images_need_the_explicit_fallback(tmp_path):
    fa = _write(tmp_path / 'a.pkl', {'0001_c1s1_000001_00.jpg': 0, '0002_c2s1_000002_00.jpg': 1})
    fb = _write(tmp_path / 'b.pkl', {'0003_c3s1_000003_00.jpg': 1})
    with pytest.raises(ValueError, match=r"1 of 4 training images.*'src_b': 1.*fallback_classifier"):
        resolve_viewpoint_labels(TRAIN, ['src_a', 'src_b'], [fa, fb])
    labels = resolve_viewpoint_labels(TRAIN, ['src_a', 'src_b'], [fa, fb], fallback_classifier=True)
    assert labels.lookup([it[0] for it in TRAIN]).tolist() == [0, 1, -1, 1]
    empty = _write(tmp_path / 'e.pkl', {})
    with pytest.raises(ValueError, match='cannot be trained'):
        resolve_viewpoint_labels(TRAIN, ['src_a', 'src_b'], empty, fallback_classifier=True)
