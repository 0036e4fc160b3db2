"""``scene-bias-video``: tiny action clips whose scene predicts the label only in training.

The label is the motion pattern of one moving disc (0 horizontal, 1 vertical,
2 diagonal back-and-forth translation, 3 circular), each invariant to time
reversal and invisible in a single frame (random start, phase and colour). The
background is one of ``num_classes`` static textured scenes. In ``train`` (and
the in-distribution ``val``) the scene equals the label with probability
``bias``; in ``test`` the scene is drawn independently of the label, so a model
that recognises the scene instead of the motion drops to chance there - the
claim of DSM / BE in miniature.

Written in mmaction2's ``VideoDataset`` format (decoded with decord)::

    videos/{train,val,test}/NNNNN.mp4          (OpenCV 'mp4v', BGR, ``fps``)
    {train,val,test}_list_videos.txt            "<split>/NNNNN.mp4 <label>" per line
    meta.json                                   class names, scene of every clip
"""
import json
import math
from pathlib import Path

import numpy as np

CLASSES = ('horizontal', 'vertical', 'diagonal', 'circular')


def _scene(k: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Static texture of scene k: (size, size, 3) uint8 (BGR), dark enough for the disc."""
    srng = np.random.default_rng(1000 + k)
    base = srng.uniform(20, 110, 3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    ang = math.pi * k / 4 + srng.uniform(-0.2, 0.2)
    freq = 3 + 2 * k
    stripes = np.sin(2 * math.pi * freq * (xx * math.cos(ang) + yy * math.sin(ang)))
    img = base[None, None, :] + 35 * stripes[..., None] * srng.uniform(0.5, 1, 3)[None, None, :]
    for _ in range(3):  # a few scene-specific blobs
        cx, cy, r = srng.uniform(0, 1), srng.uniform(0, 1), srng.uniform(0.1, 0.25)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
        img[mask] = srng.uniform(20, 120, 3)
    img += rng.normal(0, 4, img.shape)  # per-video noise
    shift = rng.integers(-size // 8, size // 8 + 1, 2)
    img = np.roll(img, tuple(int(s) for s in shift), axis=(0, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def _trajectory(label: int, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Disc centres (frames, 2) in pixels for a motion class (random amplitude, phase, centre)."""
    t = np.arange(frames, dtype=np.float64)
    amp = rng.uniform(0.25, 0.35) * size
    period = rng.uniform(0.8, 1.2) * frames
    phase = rng.uniform(0, 2 * math.pi)
    centre = rng.uniform(0.35, 0.65, 2) * size
    w = 2 * math.pi * t / period + phase
    if label == 0:
        off = np.stack([amp * np.sin(w), np.zeros_like(w)], 1)
    elif label == 1:
        off = np.stack([np.zeros_like(w), amp * np.sin(w)], 1)
    elif label == 2:
        s = rng.choice([-1.0, 1.0])
        off = np.stack([amp * np.sin(w), s * amp * np.sin(w)], 1) / math.sqrt(2) * 1.2
    else:
        off = 0.8 * amp * np.stack([np.cos(w), np.sin(w)], 1) * rng.choice([-1.0, 1.0], size=(1, 2))
    return centre[None] + off


def _render(scene: np.ndarray, traj: np.ndarray, radius: float, color) -> list:
    size = scene.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for cx, cy in traj:
        img = scene.copy()
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius * radius
        img[mask] = color
        out.append(img)
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
             val_per_class: int = 8, test_per_class: int = 25, frames: int = 16, size: int = 64,
             bias: float = 0.9, fps: int = 8) -> dict:
    """Write the dataset into ``out_dir`` (an empty folder).

    Args:
        out_dir (str | Path): target folder.
        seed (int): random seed (the output is a function of the seed and options).
        num_classes (int): motion classes = scenes, 2..4. Defaults to 4.
        train_per_class (int): train clips per class. Defaults to 24.
        val_per_class (int): in-distribution (scene-correlated) held-out clips
            per class. Defaults to 8.
        test_per_class (int): decorrelated test clips per class. Defaults to 25.
        frames (int): frames per video. Defaults to 16.
        size (int): frame side in pixels. Defaults to 64. (decord 0.6.0 mis-decodes some
            sizes, e.g. 48; the first video is checked when decord is installed.)
        bias (float): P(scene == label) in train / val. Defaults to 0.9.
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
    meta = {'classes': list(CLASSES[:num_classes]), 'bias': bias, 'clips': {}}
    counts = {}
    for split, per_class, correlated in (('train', train_per_class, True),
                                         ('val', val_per_class, True),
                                         ('test', test_per_class, False)):
        vdir = out / 'videos' / split
        vdir.mkdir(parents=True, exist_ok=True)
        lines = []
        items = [c for c in range(num_classes) for _ in range(per_class)]
        rng.shuffle(items)
        for i, label in enumerate(items):
            if correlated:
                scene = label if rng.random() < bias else int(
                    rng.choice([s for s in range(num_classes) if s != label]))
            else:
                scene = int(rng.integers(num_classes))
            bg = _scene(scene, size, rng)
            traj = _trajectory(int(label), frames, size, rng)
            color = tuple(int(v) for v in rng.uniform(170, 255, 3))
            imgs = _render(bg, traj, rng.uniform(0.1, 0.14) * size, color)
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
        (out / f'{split}_list_videos.txt').write_text('\n'.join(lines) + '\n')
        counts[split] = len(lines)
    (out / 'meta.json').write_text(json.dumps(meta, indent=1))
    return counts
