"""synth-ped: Market-1501 layout read by torchreid's stock Market1501, viewpoint file format,
and the viewpoint effect (same person from another view vs another person from the same view)."""
import os
import pickle
import re
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from reid_ext.datagen.synth_ped import generate

SMALL = dict(num_train_ids=6, num_test_ids=5, cams_per_id=3, images_per_cam=2, num_distractors=4,
             height=32, width=16)


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp('synth-ped')
    return out, generate(out, seed=3, **SMALL)


def test_synth_ped_read_by_stock_market1501(small):
    import torchreid
    root, summary = small
    ds = torchreid.data.datasets.image.Market1501(root=str(root))
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == \
        (summary['train'], summary['query'], summary['gallery'])
    assert ds.num_train_pids == SMALL['num_train_ids']
    gallery = defaultdict(set)
    for _, pid, cam, _ in ds.gallery:
        gallery[pid].add(cam)
    for _, pid, cam, _ in ds.query:  # every query has a match from another camera
        assert gallery[pid] - {cam}
    assert len({pid for _, pid, _, _ in ds.gallery if pid == 0}) == 1  # distractors


def test_synth_ped_names_and_viewpoint_file(small):
    root, summary = small
    base = root / 'market1501' / 'Market-1501-v15.09.15'
    names = [f for d in ('bounding_box_train', 'query', 'bounding_box_test')
             for f in os.listdir(base / d)]
    assert all(re.fullmatch(r'\d{4}_c[1-6]s1_\d{6}_\d{2}\.jpg', n) for n in names)
    assert len(set(names)) == len(names) == summary['train'] + summary['query'] + summary['gallery']
    with open(root / 'market1501' / 'viewpoint_labels.pkl', 'rb') as f:
        views = pickle.load(f)
    assert set(views) == set(names)
    fine_to_coarse = {'front': 0, 'front_side': 0, 'side': 1, 'back_side': 2, 'back': 2}
    assert all(fine_to_coarse[fine] == coarse for coarse, fine in views.values())
    assert {c for c, _ in views.values()} == {0, 1, 2}


def test_synth_ped_reproducible_and_styles_differ(tmp_path):
    opts = dict(SMALL, num_train_ids=2, num_test_ids=1, num_distractors=0)
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    generate(a, seed=1, **opts)
    generate(b, seed=1, **opts)
    generate(c, seed=1, style=1, **opts)
    rel = 'market1501/Market-1501-v15.09.15/bounding_box_train'
    files = sorted(os.listdir(a / rel))
    assert files == sorted(os.listdir(b / rel))
    assert all((a / rel / f).read_bytes() == (b / rel / f).read_bytes() for f in files)
    assert sorted(os.listdir(c / rel)) != files


def test_synth_ped_bad_options(tmp_path):
    with pytest.raises(ValueError, match='cams_per_id'):
        generate(tmp_path, cams_per_id=1)
    with pytest.raises(ValueError, match='style'):
        generate(tmp_path, style=2)
    with pytest.raises(ValueError, match='view_effect'):
        generate(tmp_path, view_effect=1.5)
    with pytest.raises(ValueError, match='view_outfits'):
        generate(tmp_path, view_outfits=1)


def _cross_view_ratio(root) -> float:
    """Mean pixel distance of (same identity, other viewpoint) pairs divided by that of (other
    identity, same viewpoint) pairs, on 16x8 box-downsampled training images (labels from the
    file names and the viewpoint file, distances from the pixels only)."""
    with open(root / 'market1501' / 'viewpoint_labels.pkl', 'rb') as f:
        views = pickle.load(f)
    folder = root / 'market1501' / 'Market-1501-v15.09.15' / 'bounding_box_train'
    names = sorted(os.listdir(folder))
    x = np.stack([np.asarray(Image.open(folder / n).resize((8, 16), Image.BOX), np.float64).ravel()
                  for n in names])
    pid = np.array([n[:4] for n in names])
    view = np.array([views[n][0] for n in names])
    dist = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    same_id, same_view = pid[:, None] == pid[None], view[:, None] == view[None]
    return dist[same_id & ~same_view].mean() / dist[~same_id & same_view].mean()


@pytest.mark.parametrize('seed', [0, 1])
def test_synth_ped_viewpoint_effect_in_pixels(tmp_path, seed):
    """With the viewpoint effect one person seen from another viewpoint is farther (in pixels)
    than another person seen from the same viewpoint; without it, the other way round."""
    opts = dict(num_train_ids=24, num_test_ids=1, cams_per_id=4, images_per_cam=3,
                num_distractors=0, height=64, width=32)
    generate(tmp_path / 'on', seed=seed, **opts)  # default: view_effect=1
    generate(tmp_path / 'off', seed=seed, view_effect=0.0, **opts)
    assert _cross_view_ratio(tmp_path / 'off') < 1.0 < _cross_view_ratio(tmp_path / 'on')
