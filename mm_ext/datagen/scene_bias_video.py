"""``scene-bias-video``: tiny action clips whose background predicts the label only in training.

The label is the motion of one disc that looks the same in every video (same
colour and size, so the foreground carries no static cue, neither for the class
nor for the identity of a video):

====  ==========  ==========================================================
0     rightward   constant-speed translation to the right
1     leftward    the same to the left: the time reversal of class 0
                  (the reversal-sensitive pair: a reversal-invariant
                  representation cannot separate 0 from 1)
2     vertical    up-and-down oscillation (reversal-invariant as a class)
3     circular    circular motion, random direction (reversal-invariant)
====  ==========  ==========================================================

Every trajectory is centred on a random point, so the disc's position in a
single frame has the same distribution in every class: one frame says nothing
about the label. The background of every video is unique: a random member of
one of ``num_classes`` scene *families* (pools: oriented stripes with a
family-specific orientation, frequency and palette, random phase, colours and
blobs per video, light per-frame noise). In ``train`` (and the in-distribution
``val``) the family equals the label with probability ``bias``; in ``probe``
(a decorrelated probe-training split) and ``test`` the family is drawn
independently of the label, so a representation that encodes the scene instead
of the motion falls to chance there - the claim of DSM / BE in miniature.

Written in mmaction2's ``VideoDataset`` format (decoded with decord)::

    videos/{train,val,probe,test}/NNNNN.mp4     (OpenCV 'mp4v', BGR, ``fps``)
    {train,val,probe,test}_list_videos.txt       "<split>/NNNNN.mp4 <label>" per line
    meta.json                                    class names, scene family of every clip
"""
import json
import math
from pathlib import Path

import numpy as np

CLASSES = ('rightward', 'leftward', 'vertical', 'circular')
REVERSAL_PAIR = (0, 1)
FG_COLOR = (235, 235, 235)  # BGR, the same for every video


def _scene(family: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A unique background of scene family ``family``: (size, size, 3) float BGR, dark enough for the disc."""
    frng = np.random.default_rng(1000 + family)  # the family's fixed traits
    palette = frng.uniform(25, 100, 3)
    ang0 = math.pi * family / 4
    freq0 = 2.5 + 1.5 * family
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    ang = ang0 + rng.uniform(-0.15, 0.15)
    freq = freq0 * rng.uniform(0.85, 1.15)
    phase = rng.uniform(0, 2 * math.pi)
    stripes = np.sin(2 * math.pi * freq * (xx * math.cos(ang) + yy * math.sin(ang)) + phase)
    base = palette + rng.uniform(-12, 12, 3)
    img = base[None, None, :] + 30 * stripes[..., None] * rng.uniform(0.6, 1, 3)[None, None, :]
    for _ in range(int(rng.integers(2, 5))):  # blobs: per-video positions, family-tinted colours
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.2)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
        img[mask] = np.clip(palette * rng.uniform(0.6, 1.4) + rng.uniform(-10, 10, 3), 0, 140)
    return img


def _trajectory(label: int, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Disc centres (frames, 2) in pixels (x, y), centred on a random point."""
    t = np.arange(frames, dtype=np.float64) - (frames - 1) / 2
    centre = rng.uniform(0.3, 0.7, 2) * size
    if label in (0, 1):
        speed = rng.uniform(0.026, 0.034) * size * (1 if label == 0 else -1)
        off = np.stack([speed * t, np.zeros_like(t)], 1)
    elif label == 2:
        amp = rng.uniform(0.2, 0.25) * size
        w = 2 * math.pi * t / (rng.uniform(0.8, 1.2) * frames) + rng.uniform(0, 2 * math.pi)
        off = np.stack([np.zeros_like(w), amp * np.sin(w)], 1)
    elif label == 3:
        amp = rng.uniform(0.17, 0.22) * size
        w = 2 * math.pi * t / (rng.uniform(0.8, 1.2) * frames) * rng.choice([-1.0, 1.0]) + \
            rng.uniform(0, 2 * math.pi)
        off = amp * np.stack([np.cos(w), np.sin(w)], 1)
    else:
        raise ValueError(f'scene-bias-video: no motion class {label}')
    return centre[None] + off


def _render(scene: np.ndarray, traj: np.ndarray, radius: float, rng: np.random.Generator) -> list:
    size = scene.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for cx, cy in traj:
        img = scene + rng.normal(0, 3, scene.shape)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= radius * radius] = FG_COLOR
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def _check_decodable(path: Path, frames: int, size: int) -> None:
    try:
        import decord
    except ImportError:
        return
    vr = decord.VideoReader(str(path))
    got = vr.get_batch([0]).asnumpy().shape if len(vr) else None
    if len(vr) != frames or got != (1, size, size, 3):
        raise RuntimeError(f'scene-bias-video: decord reads {path.name} as {len(vr)} frames of '
                           f'{got}, expected {frames} frames of (1, {size}, {size}, 3); choose '
                           'another size (64, 96 and 128 are known to work)')


def generate(out_dir, seed: int = 0, num_classes: int = 4, train_per_class: int = 24,
             val_per_class: int = 8, probe_per_class: int = 8, test_per_class: int = 25,
             frames: int = 16, size: int = 64, bias: float = 0.9, fps: int = 8) -> dict:
    """Write the dataset into ``out_dir`` (an empty folder).

    Args:
        out_dir (str | Path): target folder.
        seed (int): random seed (the output is a function of the seed and options).
        num_classes (int): motion classes = scene families, 2..4. Defaults to 4.
        train_per_class (int): scene-correlated train clips per class. Defaults to 24.
        val_per_class (int): in-distribution (scene-correlated) held-out clips
            per class. Defaults to 8.
        probe_per_class (int): decorrelated probe-training clips per class.
            Defaults to 8.
        test_per_class (int): decorrelated test clips per class. Defaults to 25.
        frames (int): frames per video. Defaults to 16.
        size (int): frame side in pixels. Defaults to 64. (decord 0.6.0 mis-decodes some
            sizes, e.g. 48; the first video is checked when decord is installed.)
        bias (float): P(scene family == label) in train / val. Defaults to 0.9.
        fps (int): frame rate written in the mp4. Defaults to 8.

    Returns:
        dict: clip counts per split.
    """
    import cv2  # opencv ships with mmcv / mmaction2

    if not 2 <= num_classes <= len(CLASSES):
        raise ValueError(f'scene-bias-video: num_classes must be in [2, {len(CLASSES)}], '
                         f'got {num_classes}')
    if not 0.0 <= bias <= 1.0:
        raise ValueError(f'scene-bias-video: bias must be in [0, 1], got {bias}')
    if frames < 4 or size < 16:
        raise ValueError(f'scene-bias-video: need frames >= 4 and size >= 16, got {frames}, {size}')
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    meta = {'classes': list(CLASSES[:num_classes]), 'bias': bias,
            'reversal_pair': list(REVERSAL_PAIR), 'clips': {}}
    counts = {}
    for split, per_class, correlated in (('train', train_per_class, True),
                                         ('val', val_per_class, True),
                                         ('probe', probe_per_class, False),
                                         ('test', test_per_class, False)):
        vdir = out / 'videos' / split
        vdir.mkdir(parents=True, exist_ok=True)
        lines = []
        items = [c for c in range(num_classes) for _ in range(per_class)]
        rng.shuffle(items)
        for i, label in enumerate(items):
            if correlated:
                scene = int(label) if rng.random() < bias else int(
                    rng.choice([s for s in range(num_classes) if s != label]))
            else:
                scene = int(rng.integers(num_classes))
            bg = _scene(scene, size, rng)
            traj = _trajectory(int(label), frames, size, rng)
            imgs = _render(bg, traj, 0.1 * size, rng)
            name = f'{split}/{i:05d}.mp4'
            writer = cv2.VideoWriter(str(out / 'videos' / name), cv2.VideoWriter_fourcc(*'mp4v'),
                                     fps, (size, size))
            if not writer.isOpened():
                raise RuntimeError('scene-bias-video: OpenCV cannot write mp4v videos; install an '
                                   'opencv-python build with FFmpeg support')
            for im in imgs:
                writer.write(im)
            writer.release()
            if not lines and split == 'train':
                _check_decodable(out / 'videos' / name, frames, size)
            lines.append(f'{name} {int(label)}')
            meta['clips'][name] = {'label': int(label), 'scene': scene}
        (out / f'{split}_list_videos.txt').write_text('\n'.join(lines) + ('\n' if lines else ''))
        counts[split] = len(lines)
    (out / 'meta.json').write_text(json.dumps(meta, indent=1))
    return counts
