"""Viewpoint label files (VA-reID release format) and the side-label lookup."""
import pickle

import numpy as np
import pytest

from reid_ext.datasets.side_labels import SideLabels, load_viewpoint_labels


def test_load_viewpoint_labels_release_format(tmp_path):
    path = tmp_path / 'views.pkl'
    raw = {'0002_c1s1_000451_03.jpg': (0, 'front'), 'sub/0007_c2s3_070952_01.jpg': (np.int64(2), 'back'),
           '0010_c6s4_002427_02.jpg': (1, 'side')}
    path.write_bytes(pickle.dumps(raw))
    table = load_viewpoint_labels(str(path))
    assert table == {'0002_c1s1_000451_03.jpg': 0, '0007_c2s3_070952_01.jpg': 2,
                     '0010_c6s4_002427_02.jpg': 1}
    labels = SideLabels(table).lookup(['/x/0007_c2s3_070952_01.jpg', '/y/unknown.jpg'])
    assert labels.tolist() == [2, -1]


def test_load_viewpoint_labels_refuses_code_and_bad_files(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ('pwned', ))

    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps({'a.jpg': Evil()}))
    with pytest.raises(pickle.UnpicklingError, match='builtins.print'):
        load_viewpoint_labels(str(path))
    with pytest.raises(FileNotFoundError, match='view_label_file'):
        load_viewpoint_labels(str(tmp_path / 'missing.pkl'))
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match='expected a dict'):
        load_viewpoint_labels(str(path))
