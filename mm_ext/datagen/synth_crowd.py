"""``synth-crowd``: small generated crowds in the CrowdHuman on-disk layout.

Each image shows pedestrian-like figures (head, torso, legs, in random clothes
colours) on a textured background; many stand in heavily overlapping pairs (the
case Greedy-NMS gets wrong), some alone, and some images hold a far-away crowd of
tiny figures annotated as an ignore region (``tag='mask'``), as in CrowdHuman.

Written layout (what mmdet 3.3's ``CrowdHumanDataset`` and ``CrowdHumanMetric`` read)::

    annotation_train.odgt, annotation_val.odgt   one JSON record per line:
        {"ID": "train00000", "gtboxes": [{"tag": "person", "fbox": [x, y, w, h],
          "vbox": [...], "hbox": [...], "extra": {"box_id": 0, "occ": 0, "ignore": 0},
          "head_attr": {"ignore": 0, "occ": 0, "unsure": 0}}, ...]}
    Images/<ID>.jpg
    id_hw_train.json, id_hw_val.json             {ID: [height, width]}

Boxes are (x, y, w, h) in pixels; ``fbox`` is the full (amodal) body, ``vbox`` the
visible part after occlusion, ``hbox`` the head. Every image has at least one person.
"""
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ['generate']


def _person_shapes(x, y, w, h):
    """Head ellipse, torso and two legs of a figure whose full box is (x, y, w, h)."""
    head_w, head_h = 0.42 * w, 0.17 * h
    cx = x + w / 2
    head = (cx - head_w / 2, y, cx + head_w / 2, y + head_h)
    torso = (x + 0.08 * w, y + head_h * 0.95, x + 0.92 * w, y + 0.58 * h)
    leg_l = (x + 0.16 * w, y + 0.57 * h, x + 0.46 * w, y + h)
    leg_r = (x + 0.54 * w, y + 0.57 * h, x + 0.84 * w, y + h)
    return head, torso, leg_l, leg_r


def _visible_box(mask):
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def _make_image(rng, width, height, pair_ratio, ignore_ratio):
    """Draw one image; returns (PIL image, list of gtbox dicts)."""
    # background: vertical gradient + low-frequency blobs + noise
    top, bottom = rng.uniform(60, 200, 3), rng.uniform(60, 200, 3)
    t = np.linspace(0, 1, height)[:, None, None]
    bg = (1 - t) * top + t * bottom
    bg = np.broadcast_to(bg, (height, width, 3)).copy()
    for _ in range(3):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(15, 60)
        yy, xx = np.mgrid[0:height, 0:width]
        bg += rng.uniform(-40, 40) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
    bg += rng.normal(0, 6, bg.shape)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    labels = Image.new('L', (width, height), 0)
    ldraw = ImageDraw.Draw(labels)

    gtboxes = []
    # optional far crowd = ignore region (drawn first: it is in the background)
    if rng.random() < ignore_ratio:
        rw, rh = rng.uniform(0.25, 0.4) * width, rng.uniform(0.15, 0.25) * height
        rx, ry = rng.uniform(0, width - rw), rng.uniform(0, 0.35 * height)
        for _ in range(int(rng.integers(6, 12))):
            pw = rng.uniform(3, 6)
            px, py = rng.uniform(rx, rx + rw - pw), rng.uniform(ry, ry + rh - 2.4 * pw)
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            for s in _person_shapes(px, py, pw, 2.4 * pw):
                draw.rectangle(s, fill=colour)
        box = [round(rx, 1), round(ry, 1), round(rw, 1), round(rh, 1)]
        gtboxes.append({'tag': 'mask', 'fbox': box, 'vbox': box, 'hbox': box,
                        'extra': {'box_id': 0, 'ignore': 1}})

    # people: (x, y, w, h); some in heavily overlapping pairs
    people = []
    n_groups = int(rng.integers(2, 5))
    for _ in range(n_groups):
        w = rng.uniform(0.07, 0.14) * width
        h = w * rng.uniform(2.3, 2.7)
        x = rng.uniform(0, width - w)
        y = rng.uniform(0.1 * height, height - h) if height > h * 1.1 else 0.0
        people.append((x, y, w, h))
        if rng.random() < pair_ratio:
            w2 = w * rng.uniform(0.9, 1.1)
            h2 = w2 * rng.uniform(2.3, 2.7)
            shift = rng.uniform(0.25, 0.5) * w * rng.choice([-1.0, 1.0])
            x2 = float(np.clip(x + shift, 0, width - w2))
            y2 = float(np.clip(y + rng.normal(0, 0.05) * h, 0, max(0.0, height - h2)))
            people.append((x2, y2, w2, h2))
    # paint back to front (feet lower in the image = closer to the camera)
    order = sorted(range(len(people)), key=lambda k: people[k][1] + people[k][3])
    for lab, k in enumerate(order, start=1):
        x, y, w, h = people[k]
        shirt = tuple(int(c) for c in rng.integers(0, 256, 3))
        trousers = tuple(int(c) for c in rng.integers(0, 120, 3))
        skin = tuple(int(c) for c in np.array([224, 180, 150]) * rng.uniform(0.55, 1.05))
        head, torso, leg_l, leg_r = _person_shapes(x, y, w, h)
        draw.rectangle(leg_l, fill=trousers)
        draw.rectangle(leg_r, fill=trousers)
        draw.rectangle(torso, fill=shirt)
        draw.ellipse(head, fill=skin)
        for s in (leg_l, leg_r, torso):
            ldraw.rectangle(s, fill=lab)
        ldraw.ellipse(head, fill=lab)
    lab_map = np.asarray(labels)
    for lab, k in enumerate(order, start=1):
        box_id = len(gtboxes)
        x, y, w, h = people[k]
        fimg = Image.new('1', (width, height), 0)
        fdraw = ImageDraw.Draw(fimg)
        for s in _person_shapes(x, y, w, h):
            fdraw.rectangle(s, fill=1)
        full = np.asarray(fimg, dtype=bool)
        vis = lab_map == lab
        vbox = _visible_box(vis) or [int(x), int(y), 1, 1]
        occ = 1.0 - vis.sum() / max(full.sum(), 1)
        head = _person_shapes(x, y, w, h)[0]
        gtboxes.append({
            'tag': 'person',
            'fbox': [round(x, 1), round(y, 1), round(w, 1), round(h, 1)],
            'vbox': vbox,
            'hbox': [round(head[0], 1), round(head[1], 1), round(head[2] - head[0], 1),
                     round(head[3] - head[1], 1)],
            'extra': {'box_id': box_id, 'occ': int(occ > 0.3), 'ignore': 0},
            'head_attr': {'ignore': 0, 'occ': 0, 'unsure': 0},
        })
    return img, gtboxes


def generate(out_dir, seed=0, num_train=160, num_val=40, width=256, height=160,
             pair_ratio=0.6, ignore_ratio=0.3, jpeg_quality=92):
    """Write the synth-crowd dataset into ``out_dir`` (CrowdHuman layout, see the module doc).

    Args:
        out_dir (str | Path): an empty folder to fill.
        seed (int): RNG seed (the output is a function of the seed and options). Defaults to 0.
        num_train (int): training images. Defaults to 160.
        num_val (int): validation images. Defaults to 40.
        width (int): image width in pixels. Defaults to 256.
        height (int): image height in pixels. Defaults to 160.
        pair_ratio (float): probability that a person gets an overlapping partner
            (shifted by 25-50 % of its width). Defaults to 0.6.
        ignore_ratio (float): probability of an image carrying an ignore region
            (far crowd, ``tag='mask'``). Defaults to 0.3.
        jpeg_quality (int): JPEG quality. Defaults to 92.

    Returns:
        dict: counts ``{'train': n, 'val': n, 'persons': n, 'ignore_regions': n}``.
    """
    for name, val in (('num_train', num_train), ('num_val', num_val), ('width', width), ('height', height)):
        if int(val) < 1:
            raise ValueError(f'{name} must be >= 1, got {val}')
    if width < 64 or height < 64:
        raise ValueError(f'width/height must be >= 64 pixels to fit a figure, got {width}x{height}')
    out = Path(out_dir)
    (out / 'Images').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    persons = ignores = 0
    for split, count in (('train', num_train), ('val', num_val)):
        lines, id_hw = [], {}
        for i in range(int(count)):
            img, gtboxes = _make_image(rng, int(width), int(height), pair_ratio, ignore_ratio)
            img_id = f'{split}{i:05d}'
            tmp = out / 'Images' / f'.{img_id}.jpg.tmp'
            img.save(tmp, format='JPEG', quality=int(jpeg_quality))
            os.replace(tmp, out / 'Images' / f'{img_id}.jpg')
            lines.append(json.dumps({'ID': img_id, 'gtboxes': gtboxes}))
            id_hw[img_id] = [int(height), int(width)]
            persons += sum(b['tag'] == 'person' for b in gtboxes)
            ignores += sum(b['tag'] != 'person' for b in gtboxes)
        for path, text in ((out / f'annotation_{split}.odgt', '\n'.join(lines) + '\n'),
                           (out / f'id_hw_{split}.json', json.dumps(id_hw))):
            tmp = path.with_name(path.name + '.tmp')
            tmp.write_text(text)
            os.replace(tmp, path)
    return {'train': int(num_train), 'val': int(num_val), 'persons': persons, 'ignore_regions': ignores}
