"""``synth-pi``: synth-ped people composited into multi-person crops, in the PI-ReID layout.

Written by ``python tools/make_data.py synth-pi`` into ``data/synth-pi/<flavor>/`` (``flavor``
``prw`` or ``cuhk``), the layout the PISNet release reads (spec ``reid.md`` §2.1)::

    gt_training_box.json            {"<train crop file>": pid}       single-person training crops
    each_pid_info.json              {"<pid>": {"cams": [camid..], "images": [file..]}}
    train_gt/image/                 the single-person training crops
    hard_gallery_train/gallery.json {"<crop file>": [pid, pid, ...]}  multi-person training crops
    hard_gallery_train/camera_id.json {"<crop file>": camid}
    hard_gallery_train/image/
    query/query.json                {"<query file>": pid}
    query/camera_id.json            {"<query file>": camid}
    query/query_image/
    hard_gallery_test/gallery.json  {"<crop file>": [pid, ...]}   (pid -1 = an unlabelled person)
    hard_gallery_test/camera_id.json
    hard_gallery_test/image/
    valid_q_pid.json                [pid, ...]   query identities with a gallery match (PRW rule)

pids are ints, camids ints from 1. A multi-person crop holds its first person (the box's
target, in front) and one or two other people standing beside it, bodies partly overlapping
(composited through foreground masks, see :func:`_composite`); the list order is that order.
Camera rules as in the release: ``prw`` keeps the real camera ids; ``cuhk`` writes query camid 1 and gallery
camid 2 everywhere (no same-camera filtering). Queries: one crop per (test pid, camera) for
``prw`` (the loader de-duplicates to one per pid), one per pid for ``cuhk``.

People are drawn by synth-ped's renderer (``reid_ext.datagen.synth_ped``): same identities,
cameras and viewpoints.
"""
import copy
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from reid_ext.datagen import synth_ped as sp

__all__ = ['generate', 'write_json']


def write_json(obj, path: Path) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name('.' + path.name + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=0, sort_keys=True)
    os.replace(tmp, path)


def _layer(ident, cam, view, rng, h, w):
    """One synth-ped render and its foreground mask (the person; the render's clutter objects
    count as foreground too): the same draw is rendered a second time, from a copy of the
    generator, over another background colour; pixels that do not change are foreground."""
    twin = copy.deepcopy(rng)
    img = sp._render(ident, cam, view, rng, h, w)
    alt = sp._render(ident, dict(cam, bg=(cam['bg'] + 128.0) % 256.0), view, twin, h, w)
    diff = np.abs(np.asarray(img, np.float32) - np.asarray(alt, np.float32)).sum(2)
    fg = diff < 0.5 * max(float(np.percentile(diff, 90)), 1.0)
    return img, Image.fromarray(fg.astype(np.uint8) * 255, 'L')


def _composite(people, rng, h, w, masks=True):
    """Stand the people of ``(render, mask)`` layers side by side, partly overlapping (a person
    step of 0.3-0.5 render widths; bodies with arms are about 0.55 wide): a (h, w + step(n-1))
    crop whose first person, the target, stands in front. The renders' backgrounds are laid
    down first, then the people back to front through their masks, so a person is hidden only
    by people in front of it (never by another render's background).

    ``masks=False``: the first version (``composite='rects'``): whole renders pasted back to
    front with a step of 0.45-0.6 widths, so the target's opaque background hides much of the
    others."""
    n = len(people)
    step = int(w * (rng.uniform(0.3, 0.5) if masks else rng.uniform(0.45, 0.6)))
    canvas = Image.new('RGB', (w + step * (n - 1), h))
    slots = rng.permutation(n)  # where each person stands
    order = list(reversed(range(n)))  # target last = in front
    for i in order:
        canvas.paste(people[i][0], (int(slots[i]) * step, 0))
    if masks:
        for i in order:
            canvas.paste(people[i][0], (int(slots[i]) * step, 0), people[i][1])
    return canvas


def generate(out_dir, seed: int = 0, flavor: str = 'prw', style: int = 0, num_train_ids: int = 40,
             num_test_ids: int = 50, num_cams: int = 4, cams_per_id: int = 3,
             images_per_cam: int = 2, crops_per_id: int = 3, num_unlabelled: int = 20,
             height: int = 128, width: int = 64, view_effect: float = 0.0,
             composite: str = 'masks') -> dict:
    """Write synth-pi into ``out_dir/<flavor>`` (layout in the module docstring).

    Args:
        out_dir (str | Path): an empty folder.
        seed (int): random seed.
        flavor (str): ``'prw'`` (real camids, de-duplicated queries) or ``'cuhk'`` (query camid
            1, gallery camid 2).
        style (int): synth-ped domain (0 or 1).
        num_train_ids / num_test_ids (int): identities per split (>= 3 each).
        num_cams (int): cameras (2..9); cams_per_id (int): cameras seeing each identity (>= 2).
        images_per_cam (int): single-person crops per identity and camera.
        crops_per_id (int): multi-person crops with each identity as the target.
        num_unlabelled (int): people of no identity (pid -1) used as interferers.
        height / width (int): single-person render size.
        view_effect (float): synth-ped's view-dependent outfit probability.
        composite (str): ``'masks'`` (people overlap body over body, :func:`_composite`) or
            ``'rects'`` (the first version: whole renders, backgrounds hide people).

    Returns:
        dict: counts.
    """
    if composite not in ('masks', 'rects'):
        raise ValueError(f"composite must be 'masks' or 'rects', got {composite!r}")
    if flavor not in ('prw', 'cuhk'):
        raise ValueError(f"flavor must be 'prw' or 'cuhk', got {flavor!r}")
    if style not in sp._STYLES:
        raise ValueError(f'style must be one of {sorted(sp._STYLES)}, got {style!r}')
    if not 2 <= num_cams <= 9 or not 2 <= cams_per_id <= num_cams:
        raise ValueError(f'need 2 <= cams_per_id <= num_cams <= 9, got {cams_per_id}, {num_cams}')
    if num_train_ids < 3 or num_test_ids < 3:
        raise ValueError('need at least 3 train and 3 test identities (crops hold 2-3 people)')
    if images_per_cam < 1 or crops_per_id < 1:
        raise ValueError('images_per_cam and crops_per_id must be >= 1')
    root = Path(out_dir) / flavor
    d = {k: root / k for k in ('train_gt/image', 'hard_gallery_train/image', 'query/query_image',
                               'hard_gallery_test/image')}
    for p in d.values():
        p.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, style, 7])
    vrng = np.random.default_rng([seed, style, 8])
    pal = sp._STYLES[style]
    cams = [sp._camera(rng, pal, c) for c in range(num_cams)]
    catalogue = sp._outfit_catalogue(vrng, pal, 4)

    def person():
        ident = sp._identity(rng, pal)
        ident['views'] = sp._view_outfits(vrng, catalogue) if vrng.random() < view_effect else None
        return ident

    def render(ident, cam):
        return sp._render(ident, cams[cam], sp._pick_view(rng, cams[cam]), rng, height, width)

    def layer(ident, cam):
        return _layer(ident, cams[cam], sp._pick_view(rng, cams[cam]), rng, height, width)

    ids = rng.permutation(np.arange(1, 1000))[:num_train_ids + num_test_ids]
    train_ids, test_ids = sorted(int(i) for i in ids[:num_train_ids]), \
        sorted(int(i) for i in ids[num_train_ids:])
    idents = {pid: person() for pid in train_ids + test_ids}
    others = [person() for _ in range(num_unlabelled)]
    id_cams = {pid: sorted(int(c) for c in rng.choice(num_cams, cams_per_id, replace=False))
               for pid in idents}
    cam_out = (lambda c, role: c + 1) if flavor == 'prw' else \
        (lambda c, role: 1 if role == 'query' else 2)
    counter = [0]

    def fname(pid, cam):
        counter[0] += 1
        return f'{max(pid, 0):04d}_c{cam + 1}_{counter[0]:06d}.jpg'

    # single-person training crops
    gt_box, pid_info = {}, {}
    for pid in train_ids:
        info = pid_info.setdefault(str(pid), {'cams': [], 'images': []})
        for c in id_cams[pid]:
            for _ in range(images_per_cam):
                fn = fname(pid, c)
                sp._save(render(idents[pid], c), d['train_gt/image'] / fn)
                gt_box[fn] = pid
                info['cams'].append(cam_out(c, 'train'))
                info['images'].append(fn)

    def crops(split_ids, folder, role):
        gal, cam_ids = {}, {}
        for pid in split_ids:
            for k in range(crops_per_id):
                c = int(id_cams[pid][k % len(id_cams[pid])])
                n_other = 1 if rng.random() < 0.7 else 2
                mates = [int(m) for m in rng.choice([q for q in split_ids if q != pid], n_other,
                                                    replace=False)]
                if split_ids is test_ids and others and rng.random() < 0.3:
                    mates[-1] = -1  # an unlabelled passer-by
                imgs = [layer(idents[pid], c)] + [
                    layer(idents[m] if m >= 0 else others[int(rng.integers(len(others)))], c)
                    for m in mates]
                fn = fname(pid, c)
                sp._save(_composite(imgs, rng, height, width, composite == 'masks'),
                         d[folder] / fn)
                gal[fn] = [pid] + mates
                cam_ids[fn] = cam_out(c, role)
        return gal, cam_ids

    g_train, c_train = crops(train_ids, 'hard_gallery_train/image', 'gallery')
    g_test, c_test = crops(test_ids, 'hard_gallery_test/image', 'gallery')
    # queries: clean single-person crops of test identities
    query, q_cam = {}, {}
    for pid in test_ids:
        qcams = id_cams[pid] if flavor == 'prw' else id_cams[pid][:1]
        for c in qcams:
            fn = fname(pid, c)
            sp._save(render(idents[pid], c), d['query/query_image'] / fn)
            query[fn] = pid
            q_cam[fn] = cam_out(c, 'query')
    # a query pid is valid if a gallery crop holds it as a person seen by another camera
    valid = sorted({pid for fn, pids in g_test.items() for pid in pids
                    if pid in query.values() and any(
                        q_cam[q] != c_test[fn] for q, p in query.items() if p == pid)} | (
        set(test_ids) if flavor == 'cuhk' else set()))
    write_json(gt_box, root / 'gt_training_box.json')
    write_json(pid_info, root / 'each_pid_info.json')
    write_json(g_train, root / 'hard_gallery_train/gallery.json')
    write_json(c_train, root / 'hard_gallery_train/camera_id.json')
    write_json(query, root / 'query/query.json')
    write_json(q_cam, root / 'query/camera_id.json')
    write_json(g_test, root / 'hard_gallery_test/gallery.json')
    write_json(c_test, root / 'hard_gallery_test/camera_id.json')
    write_json(valid, root / 'valid_q_pid.json')
    return dict(flavor=flavor, train_crops=len(gt_box), train_gallery=len(g_train),
                query=len(query), gallery=len(g_test), train_ids=num_train_ids,
                test_ids=num_test_ids, valid_query_pids=len(valid))
