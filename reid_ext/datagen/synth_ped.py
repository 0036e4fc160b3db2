"""``synth-ped``: procedurally drawn pedestrians in the real Market-1501 layout and file naming.

Written by ``python tools/make_data.py synth-ped`` into ``data/synth-ped/``::

    market1501/Market-1501-v15.09.15/
        bounding_box_train/  0001_c1s1_000123_00.jpg ...   (training identities)
        query/               one image per (test identity, camera)
        bounding_box_test/   the other test images + distractors (pid 0000)
    market1501/viewpoint_labels.pkl

so that torchreid's stock ``Market1501(root='data/synth-ped')`` reads it. The viewpoint file
has the format of the labels released by the VA-reID authors: a pickled ``dict`` mapping the
image file name to ``(coarse_id, fine_label)``, coarse 0 = front, 1 = side, 2 = back, fine one
of ``front, front_side, side, back_side, back``.

An identity is a combination of clothing colours (upper, lower, shoes), an upper-body pattern,
a build (height, width), hair and skin tones, a chest logo only visible from the front and a
backpack only visible from the back; palettes are small, so many identities differ in one or
two attributes. Each camera has its own illumination (gain, colour cast), scale, blur, noise,
background and a preferred viewpoint. ``style`` selects one of two domains (palettes, lighting,
backgrounds) for the domain-adaptation methods; the identities of two styles are disjoint
draws.

Viewpoint effect (the problem VA-reID addresses, ``view_effect``): with probability
``view_effect`` an identity wears a *view-dependent outfit*: what covers the torso and arms
(colour, pattern, chest print, backpack, coat length, hood) is drawn separately for the front, the side and the
back, each from a small catalogue of ``view_outfits`` looks per viewpoint shared by all
identities. So one person looks very different from the front, the side and the back, while
many different people look alike from one viewpoint; only the smaller view-invariant cues
(legs, shoes, hair, skin, build) tell them apart. ``view_effect=0`` renders every identity with
one outfit for all views and gives exactly the images of the earlier generator.
"""
import os
import pickle
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ['generate', 'VIEW_NAMES', 'FINE_TO_COARSE']

VIEW_NAMES = ('front', 'side', 'back')
FINE_VIEWS = ('front', 'front_side', 'side', 'back_side', 'back')
FINE_TO_COARSE = {'front': 0, 'front_side': 0, 'side': 1, 'back_side': 2, 'back': 2}

_STYLES = {
    # palettes (RGB) and domain-level rendering statistics
    0: dict(upper=[(200, 40, 40), (40, 60, 170), (235, 235, 235), (30, 30, 30), (60, 140, 60),
                   (220, 190, 50), (120, 70, 150), (130, 130, 130)],
            lower=[(25, 25, 35), (50, 70, 130), (140, 120, 90), (90, 90, 90), (200, 200, 190)],
            shoes=[(20, 20, 20), (230, 230, 230), (120, 70, 40)],
            hair=[(20, 15, 10), (90, 60, 30), (170, 140, 90)],
            skin=[(235, 200, 170), (190, 140, 100), (120, 80, 55)],
            bg=((110, 110, 105), (150, 145, 135)), gain=(0.75, 1.25), cast=0.12),
    1: dict(upper=[(170, 60, 90), (50, 110, 160), (210, 215, 200), (50, 45, 40), (90, 120, 60),
                   (200, 150, 60), (80, 80, 140), (160, 100, 80)],
            lower=[(40, 35, 30), (70, 80, 110), (120, 110, 100), (60, 70, 60), (170, 160, 140)],
            shoes=[(40, 35, 30), (200, 200, 200), (90, 60, 50)],
            hair=[(30, 25, 25), (110, 80, 50), (60, 50, 40)],
            skin=[(225, 190, 165), (175, 130, 95), (140, 100, 75)],
            bg=((70, 80, 95), (120, 130, 140)), gain=(0.55, 1.0), cast=0.2),
}
_PATTERNS = ('plain', 'hstripes', 'vstripes', 'checker')


def _identity(rng: np.random.Generator, pal: dict) -> dict:
    pick = lambda key: tuple(pal[key][rng.integers(len(pal[key]))])  # noqa: E731
    return dict(
        upper=pick('upper'), lower=pick('lower'), shoes=pick('shoes'), hair=pick('hair'),
        skin=pick('skin'), pattern=_PATTERNS[rng.integers(len(_PATTERNS))],
        pattern_color=pick('upper'), height=float(rng.uniform(0.82, 1.0)),
        width=float(rng.uniform(0.8, 1.15)), logo=pick('upper') if rng.random() < 0.5 else None,
        backpack=pick('lower') if rng.random() < 0.5 else None,
        long_hair=bool(rng.random() < 0.35), shorts=bool(rng.random() < 0.25))


def _outfit_catalogue(rng: np.random.Generator, pal: dict, num: int) -> list:
    """``num`` looks per coarse viewpoint (front, side, back), each a dict with ``upper``,
    ``pattern``, ``pattern_color``, ``logo`` (front only), ``backpack`` (side strip, back),
    ``coat`` (fraction of the legs covered) and ``hood`` (hides the hair; side, back).

    The looks of one viewpoint have distinct torso colours (``num`` <= palette size).
    """
    n_col = len(pal['upper'])
    out = []
    for view in range(3):
        looks = []
        for col in rng.choice(n_col, size=num, replace=False):
            looks.append(dict(
                upper=tuple(pal['upper'][col]), pattern=_PATTERNS[int(rng.integers(len(_PATTERNS)))],
                pattern_color=tuple(pal['upper'][int(rng.integers(n_col))]),
                logo=tuple(pal['upper'][int(rng.integers(n_col))]) if view == 0 else None,
                backpack=tuple(pal['lower'][int(rng.integers(len(pal['lower'])))]) if view else None,
                coat=float(rng.choice((0.0, 0.4, 0.75))), hood=bool(view and rng.random() < 0.5)))
        out.append(looks)
    return out


def _view_outfits(rng: np.random.Generator, catalogue: list, tries: int = 20) -> list:
    """One catalogue look per viewpoint for one identity: of ``tries`` draws, the one whose three
    torso colours are farthest apart (smallest pairwise RGB distance), so the views differ."""
    best, best_d = None, -1.0
    for _ in range(tries):
        looks = [catalogue[v][int(rng.integers(len(catalogue[v])))] for v in range(3)]
        cols = [np.array(look['upper'], dtype=np.float32) for look in looks]
        d = min(float(np.linalg.norm(cols[i] - cols[j])) for i, j in ((0, 1), (0, 2), (1, 2)))
        if d > best_d:
            best, best_d = looks, d
    return best


def _look(ident: dict, coarse: int) -> dict:
    """What covers the torso of ``ident`` from coarse viewpoint ``coarse``."""
    if ident.get('views') is not None:
        return ident['views'][coarse]
    return {k: ident[k] for k in ('upper', 'pattern', 'pattern_color', 'logo', 'backpack')}


def _camera(rng: np.random.Generator, style: dict, cam: int) -> dict:
    lo, hi = style['bg']
    return dict(
        gain=float(rng.uniform(*style['gain'])),
        cast=rng.uniform(1 - style['cast'], 1 + style['cast'], size=3),
        blur=float(rng.uniform(0.0, 1.4)), noise=float(rng.uniform(3, 12)),
        scale=float(rng.uniform(0.8, 1.0)),
        bg=np.array([rng.integers(lo[i], hi[i] + 1) for i in range(3)], dtype=np.float32),
        view_pref=cam % 3)


def _fill_pattern(draw, box, look):
    x0, y0, x1, y1 = box
    draw.rectangle(box, fill=look['upper'])
    c = look['pattern_color']
    if look['pattern'] == 'hstripes':
        for y in range(int(y0) + 2, int(y1), 5):
            draw.rectangle((x0, y, x1, y + 1), fill=c)
    elif look['pattern'] == 'vstripes':
        for x in range(int(x0) + 2, int(x1), 5):
            draw.rectangle((x, y0, x + 1, y1), fill=c)
    elif look['pattern'] == 'checker':
        for y in range(int(y0), int(y1), 6):
            for x in range(int(x0) + (3 if (y // 6) % 2 else 0), int(x1), 6):
                draw.rectangle((x, y, min(x + 2, x1), min(y + 2, y1)), fill=c)


def _render(ident: dict, cam: dict, fine_view: str, rng: np.random.Generator, h: int,
            w: int) -> Image.Image:
    """One (h, w) RGB crop of ``ident`` seen by ``cam`` from ``fine_view``."""
    ss = 2  # draw at 2x and downsample: smoother edges
    H, W = h * ss, w * ss
    yy = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    bg = cam['bg'][None, None] * (0.85 + 0.3 * yy) + rng.normal(0, 6, size=(H, W, 3))
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(1, 4)):  # clutter
        x, y = rng.integers(0, W), rng.integers(0, H)
        col = tuple(int(v) for v in rng.integers(40, 220, size=3))
        draw.rectangle((x, y, x + rng.integers(4, W // 2), y + rng.integers(4, H // 3)), fill=col)
    coarse = FINE_TO_COARSE[fine_view]
    look = _look(ident, coarse)
    side_ratio = {'front': 1.0, 'front_side': 0.8, 'side': 0.55, 'back_side': 0.8, 'back': 1.0}
    s = cam['scale'] * ident['height'] * rng.uniform(0.92, 1.05)
    ph = H * s  # person height
    cx = W / 2 + rng.normal(0, W * 0.04)
    top = (H - ph) / 2 + rng.normal(0, H * 0.03)
    bw = W * 0.42 * ident['width'] * side_ratio[fine_view]  # torso width
    head_h = ph * 0.13
    head = (cx - head_h * 0.4, top, cx + head_h * 0.4, top + head_h)
    torso = (cx - bw / 2, top + head_h, cx + bw / 2, top + ph * 0.52)
    legs_top, legs_bot = torso[3], top + ph * 0.95
    # legs and shoes
    leg_w = bw * 0.42
    for k, off in enumerate((-1, 1)):
        if fine_view == 'side' and k == 1:
            off = -0.2
        lx = cx + off * bw * 0.24
        lower = ident['lower']
        if ident['shorts']:
            mid = legs_top + (legs_bot - legs_top) * 0.45
            draw.rectangle((lx - leg_w / 2, legs_top, lx + leg_w / 2, mid), fill=lower)
            draw.rectangle((lx - leg_w / 2.6, mid, lx + leg_w / 2.6, legs_bot), fill=ident['skin'])
        else:
            draw.rectangle((lx - leg_w / 2, legs_top, lx + leg_w / 2, legs_bot), fill=lower)
        sx = 0.4 * leg_w if fine_view == 'side' else 0.0
        draw.rectangle((lx - leg_w / 2, legs_bot, lx + leg_w / 2 + sx, legs_bot + ph * 0.04),
                       fill=ident['shoes'])
    # arms
    arm_w = bw * 0.22
    for off in ((-1, 1) if fine_view != 'side' else (0.1,)):
        ax = cx + off * (bw / 2 + arm_w / 2)
        draw.rectangle((ax - arm_w / 2, torso[1] + 2, ax + arm_w / 2, torso[1] + ph * 0.36),
                       fill=look['upper'])
        draw.ellipse((ax - arm_w / 2, torso[1] + ph * 0.34, ax + arm_w / 2, torso[1] + ph * 0.4),
                     fill=ident['skin'])
    # a coat reaches down over the legs (view-dependent outfits only)
    coat = look.get('coat', 0.0)
    _fill_pattern(draw, torso if not coat else
                  (torso[0], torso[1], torso[2], legs_top + coat * (legs_bot - legs_top)), look)
    if coarse == 0 and look['logo'] is not None:  # chest logo, visible from the front only
        lw = bw * (0.35 if fine_view == 'front' else 0.25)
        lx = cx + (0 if fine_view == 'front' else bw * 0.15)
        draw.ellipse((lx - lw / 2, torso[1] + ph * 0.08, lx + lw / 2, torso[1] + ph * 0.08 + lw),
                     fill=look['logo'])
    if look['backpack'] is not None:  # backpack: large from the back, a strip from the side
        if coarse == 2:
            pw = bw * (0.8 if fine_view == 'back' else 0.6)
            draw.rectangle((cx - pw / 2, torso[1] + ph * 0.04, cx + pw / 2, torso[1] + ph * 0.3),
                           fill=look['backpack'])
        elif coarse == 1:
            draw.rectangle((cx - bw / 2 - bw * 0.35, torso[1] + ph * 0.04, cx - bw / 2,
                            torso[1] + ph * 0.3), fill=look['backpack'])
    # head: face from the front, hair from the back, profile from the side
    draw.ellipse(head, fill=ident['skin'])
    hx0, hy0, hx1, hy1 = head
    if coarse == 2:
        draw.ellipse(head, fill=ident['hair'])
    elif coarse == 1:
        draw.pieslice((hx0, hy0, hx1 + (hx1 - hx0) * 0.3, hy1), 180, 360, fill=ident['hair'])
    else:
        draw.chord(head, 180, 360, fill=ident['hair'])
    if ident['long_hair'] and coarse != 0:
        draw.rectangle((hx0, (hy0 + hy1) / 2, hx1, hy1 + ph * 0.08), fill=ident['hair'])
    if look.get('hood') and coarse != 0:  # a hood hides the hair from the side and the back
        draw.ellipse((hx0 - 1, hy0 - 1, hx1 + 1, hy1 + ph * 0.03), fill=look['upper'])
    img = img.resize((w, h), Image.BILINEAR)
    if cam['blur'] > 0.2:
        img = img.filter(ImageFilter.GaussianBlur(cam['blur'] * rng.uniform(0.7, 1.3)))
    a = np.asarray(img, dtype=np.float32)
    light = cam['gain'] * rng.uniform(0.85, 1.15)
    a = a * light * cam['cast'][None, None] + rng.normal(0, cam['noise'], size=a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _pick_view(rng, cam) -> str:
    coarse_p = np.full(3, 0.2)
    coarse_p[cam['view_pref']] = 0.6
    coarse = int(rng.choice(3, p=coarse_p))
    fine = {0: ('front', 'front_side'), 1: ('side', ), 2: ('back', 'back_side')}[coarse]
    return fine[int(rng.integers(len(fine)))] if len(fine) > 1 and rng.random() < 0.3 else fine[0]


def _save(img: Image.Image, path: Path) -> None:
    tmp = path.with_name('.' + path.name + '.tmp')
    img.save(tmp, format='JPEG', quality=92)
    os.replace(tmp, path)


def generate(out_dir, seed: int = 0, style: int = 0, num_train_ids: int = 80,
             num_test_ids: int = 80, num_cams: int = 6, cams_per_id: int = 4,
             images_per_cam: int = 3, num_distractors: int = 40, height: int = 128,
             width: int = 64, view_effect: float = 1.0, view_outfits: int = 4) -> dict:
    """Write synth-ped into ``out_dir`` (Market-1501 layout, see the module docstring).

    Args:
        out_dir (str | Path): an empty folder.
        seed (int): random seed. Defaults to 0.
        style (int): domain, 0 or 1 (palettes, lighting, backgrounds). Defaults to 0.
        num_train_ids (int): training identities. Defaults to 80.
        num_test_ids (int): test identities (query + gallery). Defaults to 80.
        num_cams (int): cameras, at most 6 (Market naming). Defaults to 6.
        cams_per_id (int): cameras that see each identity, >= 2. Defaults to 4.
        images_per_cam (int): images per identity and camera. Defaults to 3.
        num_distractors (int): gallery images of identity 0000. Defaults to 40.
        height (int): image height in pixels. Defaults to 128.
        width (int): image width in pixels. Defaults to 64.
        view_effect (float): probability that an identity wears a view-dependent outfit (module
            docstring); 0 reproduces the single-outfit images of the earlier generator.
            Defaults to 1.
        view_outfits (int): looks per viewpoint in the shared catalogue, in [2, 8] (fewer = more
            identities alike from one viewpoint). Defaults to 4.

    Returns:
        dict: image counts per split and the number of identities.
    """
    if style not in _STYLES:
        raise ValueError(f'style must be one of {sorted(_STYLES)}, got {style!r}')
    if not 2 <= num_cams <= 6:
        raise ValueError(f'num_cams must be in [2, 6] (Market-1501 names cameras c1..c6), got {num_cams}')
    if not 2 <= cams_per_id <= num_cams:
        raise ValueError(f'cams_per_id must be in [2, num_cams={num_cams}] so that every query has '
                         f'a gallery match from another camera, got {cams_per_id}')
    if num_train_ids < 1 or num_test_ids < 1 or num_train_ids + num_test_ids > 1500:
        raise ValueError(f'need 1 <= num_train_ids, num_test_ids and a total <= 1500, got '
                         f'{num_train_ids} + {num_test_ids}')
    if images_per_cam < 1:
        raise ValueError(f'images_per_cam must be >= 1, got {images_per_cam}')
    if not 0.0 <= view_effect <= 1.0:
        raise ValueError(f'view_effect must be in [0, 1] (a probability per identity), got {view_effect}')
    if not 2 <= view_outfits <= len(_STYLES[style]['upper']):
        raise ValueError(f'view_outfits must be in [2, {len(_STYLES[style]["upper"])}] (looks per '
                         f'viewpoint, distinct torso colours), got {view_outfits}')
    out = Path(out_dir) / 'market1501'
    base = out / 'Market-1501-v15.09.15'
    dirs = {k: base / k for k in ('bounding_box_train', 'query', 'bounding_box_test')}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, style])
    pal = _STYLES[style]
    cams = [_camera(rng, pal, c) for c in range(num_cams)]
    # the viewpoint effect draws from its own stream: view_effect=0 leaves `rng` (and the images)
    # exactly as before
    vrng = np.random.default_rng([seed, style, 1])
    catalogue = _outfit_catalogue(vrng, pal, view_outfits)

    def person():
        ident = _identity(rng, pal)
        ident['views'] = _view_outfits(vrng, catalogue) if vrng.random() < view_effect else None
        return ident
    views = {}
    frame = [0]

    def name(pid, cam, bbox):
        frame[0] += int(rng.integers(1, 40))
        return f'{pid:04d}_c{cam + 1}s1_{frame[0]:06d}_{bbox:02d}.jpg'

    def shoot(ident, pid, cam_id, k):
        fine = _pick_view(rng, cams[cam_id])
        fn = name(pid, cam_id, k)
        return fn, fine, _render(ident, cams[cam_id], fine, rng, height, width)

    counts = dict(train=0, query=0, gallery=0)
    pids = rng.permutation(np.arange(1, 1501))[:num_train_ids + num_test_ids]
    train_pids, test_pids = sorted(pids[:num_train_ids]), sorted(pids[num_train_ids:])
    for split, split_pids in (('train', train_pids), ('test', test_pids)):
        for pid in split_pids:
            ident = person()
            id_cams = rng.choice(num_cams, size=cams_per_id, replace=False)
            for j, cam_id in enumerate(id_cams):
                for k in range(images_per_cam):
                    fn, fine, img = shoot(ident, int(pid), int(cam_id), k)
                    if split == 'train':
                        dest = 'bounding_box_train'
                    else:  # first image of the first cameras -> query, the rest -> gallery
                        dest = 'query' if (k == 0 and j < cams_per_id - 1) else 'bounding_box_test'
                    key = {'bounding_box_train': 'train', 'query': 'query'}.get(dest, 'gallery')
                    counts[key] += 1
                    _save(img, dirs[dest] / fn)
                    views[fn] = (FINE_TO_COARSE[fine], fine)
    for i in range(num_distractors):  # identity 0000: a random person of no test identity
        cam_id = int(rng.integers(num_cams))
        fn, fine, img = shoot(person(), 0, cam_id, i % 100)
        _save(img, dirs['bounding_box_test'] / fn)
        views[fn] = (FINE_TO_COARSE[fine], fine)
        counts['gallery'] += 1
    tmp = out / '.viewpoint_labels.pkl.tmp'
    with open(tmp, 'wb') as f:
        pickle.dump(views, f, protocol=4)
    os.replace(tmp, out / 'viewpoint_labels.pkl')
    counts.update(train_ids=num_train_ids, test_ids=num_test_ids, style=style,
                  view_effect=view_effect)
    return counts
