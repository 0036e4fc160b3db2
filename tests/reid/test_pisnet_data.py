"""synth-pi generator + PI-ReID torchreid datasets (layout, labels, camera rules, errors)."""
import json
import os.path as osp
import shutil

import pytest
import torchvision.transforms as T

from mm_ext.core.datacheck import DataFormatError
from reid_ext.datagen.synth_pi import generate
from reid_ext.datasets.pi_reid import PIReID, PIReIDSingle

SMALL = dict(num_train_ids=4, num_test_ids=3, num_cams=3, cams_per_id=2, images_per_cam=2,
             crops_per_id=2, num_unlabelled=2, height=32, width=16)


@pytest.fixture(scope='module')
def pi_root(tmp_path_factory):
    out = tmp_path_factory.mktemp('synth_pi')
    generate(out, seed=0, **SMALL)
    return str(out / 'prw')


def _json(root, *p):
    with open(osp.join(root, *p)) as f:
        return json.load(f)


def test_layout_and_single_dataset(pi_root):
    for p in ('gt_training_box.json', 'each_pid_info.json', 'valid_q_pid.json',
              'hard_gallery_train/gallery.json', 'hard_gallery_train/camera_id.json',
              'query/query.json', 'query/camera_id.json', 'hard_gallery_test/gallery.json',
              'hard_gallery_test/camera_id.json'):
        assert osp.isfile(osp.join(pi_root, p)), p
    gt = _json(pi_root, 'gt_training_box.json')
    ds = PIReIDSingle(root=pi_root, verbose=False)
    assert len(ds.train) == len(gt) == 4 * 2 * 2 and ds.num_train_pids == 4
    gal = _json(pi_root, 'hard_gallery_test', 'gallery.json')
    assert all(len(v) >= 2 for v in gal.values())          # multi-person crops
    assert {osp.basename(k): v for k, v in ds.gallery_pids.items()} == gal
    # PRW rule: one query per valid pid, real camera ids kept
    q = _json(pi_root, 'query', 'query.json')
    qc = _json(pi_root, 'query', 'camera_id.json')
    valid = set(_json(pi_root, 'valid_q_pid.json'))
    assert len(q) > len(ds.query) == len(valid)
    assert sorted(p for _, p, _, _ in ds.query) == sorted(valid)
    assert all(qc[osp.basename(path)] == c for path, _, c, _ in ds.query)


def test_triples_and_regeneration(pi_root):
    tf = T.Compose([T.Resize((32, 16)), T.ToTensor()])
    ds = PIReID(root=pi_root, transform=tf, verbose=False)
    crops = _json(pi_root, 'hard_gallery_train', 'gallery.json')
    cams = _json(pi_root, 'hard_gallery_train', 'camera_id.json')
    gt = _json(pi_root, 'gt_training_box.json')
    assert len(ds.train) == 2 * len(crops)                  # each crop gives two triples
    inv = {v: k for k, v in ds.relabel.items()}
    for (g, q1, q2), p1, cam, _, p2 in ds.train:
        pids = crops[osp.basename(g)]
        assert {inv[p1], inv[p2]} == set(pids[:2])
        assert gt[osp.basename(q1)] == inv[p1] and gt[osp.basename(q2)] == inv[p2]
        assert cam == cams[osp.basename(g)]
        assert f'_c{cam}_' not in osp.basename(q1)            # PRW: q1 from another camera
    before = list(ds.train)
    ds.regenerate(1)
    assert [t[0][0] for t in ds.train] == [t[0][0] for t in before]
    assert [t[0][1:] for t in ds.train] != [t[0][1:] for t in before]
    item = ds[0]
    assert item['img'].shape == item['q1'].shape == item['q2'].shape == (3, 32, 16)
    assert item['pid'] == ds.train[0][1] and item['pid2'] == ds.train[0][4]


def test_cuhk_camera_rule(tmp_path):
    generate(tmp_path, seed=1, flavor='cuhk', **SMALL)
    from reid_ext.datasets.pi_reid import PICUHKSYSU, PICUHKSYSUSingle
    ds = PICUHKSYSUSingle(root=str(tmp_path), verbose=False)
    assert {c for *_, c, _ in ds.query} == {1} and {c for *_, c, _ in ds.gallery} == {2}
    assert len(ds.query) == SMALL['num_test_ids']   # one query per identity
    assert PICUHKSYSU(root=str(tmp_path), verbose=False).num_train_pids == SMALL['num_train_ids']


def test_configs_load_with_spec_settings(repo_root):
    from reid_ext.config import load_config
    for ds, lr in (('prw', 3.5e-4), ('cuhk_sysu', 3.5e-5)):
        s2 = load_config(str(repo_root / f'configs/reid/pisnet/pisnet_resnet50_pi_{ds}_stage2.yaml'))
        assert s2.engine.name == 'pisnet' and s2.train.lr == pytest.approx(lr)
        assert (s2.pisnet.gamma, s2.pisnet.beta, s2.pisnet.margin, s2.pisnet.topk) == (1.0, 0.5, 0.1, 100)
        assert s2.pisnet.pyramid == 's2' and not s2.pisnet.release_wiring
        s1 = load_config(str(repo_root / f'configs/reid/pisnet/bot_resnet50_pi_{ds}_stage1.yaml'))
        assert s1.train.max_epoch == 120 and list(s1.train.stepsize) == [40, 70]
        assert s2.model.load_weights.startswith(s1.data.save_dir)


@pytest.mark.parametrize('rel,edit', [
    ('hard_gallery_test/gallery.json', lambda d: d.__setitem__(next(iter(d)), 5)),
    ('query/query.json', lambda d: d.__setitem__(next(iter(d)), 'x')),
    ('hard_gallery_train/camera_id.json', lambda d: d.pop(next(iter(d)))),
])
def test_malformed_json_names_file_and_field(pi_root, tmp_path, rel, edit):
    from reid_ext.datasets.pi_reid import _PIBase
    root = tmp_path / 'prw'
    shutil.copytree(pi_root, root)
    path = root / rel
    d = json.loads(path.read_text())
    key = sorted(d)[0]
    d = dict(sorted(d.items()))
    edit(d)
    path.write_text(json.dumps(d))
    with pytest.raises(DataFormatError) as e:
        PIReIDSingle(root=str(root), verbose=False)
    assert rel.split('/')[-1] in str(e.value)
    assert key in str(e.value)                                  # the field (crop/image name)
    _PIBase._cache.clear()


def test_composite_hides_a_person_only_behind_people_in_front():
    """Regression: the interferer was hidden by the target render's opaque background."""
    import numpy as np
    from PIL import Image

    from reid_ext.datagen.synth_pi import _composite
    h, w = 8, 20
    body = np.zeros((h, w), bool)
    body[1:7, 6:14] = True                                      # columns 0.3w..0.7w

    def person(color):
        a = np.full((h, w, 3), 90, np.uint8)
        a[body] = color
        return Image.fromarray(a), Image.fromarray(body.astype(np.uint8) * 255, 'L')

    for seed in range(6):
        rng = np.random.default_rng(seed)
        out = np.asarray(_composite([person((255, 0, 0)), person((0, 0, 255))], rng, h, w))
        ref = np.random.default_rng(seed)
        step = int(w * ref.uniform(0.3, 0.5))
        slots = ref.permutation(2)
        red, blue = np.zeros(out.shape[:2], bool), np.zeros(out.shape[:2], bool)
        red[:, slots[0] * step:slots[0] * step + w] = body
        blue[:, slots[1] * step:slots[1] * step + w] = body
        assert out.shape == (h, w + step, 3)
        assert (out[red] == (255, 0, 0)).all()                  # the target is in front
        assert (out[blue & ~red] == (0, 0, 255)).all()          # the rest of the other person shows
        assert (blue & red).any() or step >= 8                  # bodies overlap when close


def test_layer_mask_is_the_person():
    import numpy as np

    from reid_ext.datagen import synth_ped as sp
    from reid_ext.datagen.synth_pi import _layer
    rng = np.random.default_rng(0)
    pal = sp._STYLES[0]
    cam = sp._camera(rng, pal, 0)
    ident = sp._identity(rng, pal)
    ident['views'] = None
    state = rng.bit_generator.state
    img, mask = _layer(ident, cam, 'front', rng, 64, 32)
    m = np.asarray(mask) > 0
    rng.bit_generator.state = state
    plain = sp._render(ident, cam, 'front', rng, 64, 32)   # the same render, same draws
    assert np.array_equal(np.asarray(img), np.asarray(plain))
    assert m[20:40, 14:18].all()                            # the body's centre
    assert 0.15 < m.mean() < 0.8
