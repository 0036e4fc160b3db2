"""DSM temporal local disturbance: the motion-broken, scene-intact negative.

`Enhancing Unsupervised Video Representation Learning by Decoupling the Scene
and the Motion <https://arxiv.org/abs/2009.05757>`_, Sec. 3 ("temporal local
disturbance"). As released, the negative is a second, temporally shifted window
of the same video (:func:`sample_anchor_and_negative`); frame insertion / swap
(:func:`temporal_eda`) is an option that the release instantiates but never
applies. :func:`reverse_time` is the temporal inversion of TBE.
"""
from typing import Optional, Tuple

import numpy as np
import torch

__all__ = ['window_indices', 'sample_anchor_and_negative', 'temporal_eda', 'reverse_time']


def window_indices(start: int, clip_len: int, frame_interval: int, num_frames: int) -> np.ndarray:
    """0-based indices of a clip of ``clip_len`` frames every ``frame_interval``, wrapping to 0.

    Returns:
        ndarray: shape (clip_len,), int64, values in [0, num_frames).
    """
    if num_frames <= 0:
        raise ValueError(f'window_indices: num_frames must be > 0, got {num_frames}')
    return (start + frame_interval * np.arange(clip_len, dtype=np.int64)) % num_frames


def sample_anchor_and_negative(num_frames: int,
                               clip_len: int,
                               frame_interval: int = 1,
                               min_offset: int = 2,
                               span_len: Optional[int] = None,
                               rng: Optional[np.random.Generator] = None) -> Tuple[int, int]:
    """Start frames of the anchor window and of the shifted negative window.

    Both starts are uniform in ``[0, max(N - span, 0)]`` with ``span = span_len or
    clip_len * frame_interval`` (the release uses a fixed 32 / 16 frames here
    whatever the clip length: pass ``span_len`` to reproduce it). If the two
    starts are closer than ``min_offset`` the negative start moves by ``N // 3``
    modulo N (the release's rule; it still may overlap the anchor).

    Args:
        num_frames (int): N, frames in the video.
        clip_len (int): frames per clip.
        frame_interval (int): temporal stride. Defaults to 1.
        min_offset (int): minimum start gap (2 in the release for frame folders,
            4 for Kinetics). Defaults to 2.
        span_len (int, optional): sampling span override (see above).
        rng (np.random.Generator, optional): random generator.

    Returns:
        tuple[int, int]: 0-based (anchor_start, negative_start).
    """
    if num_frames <= 0:
        raise ValueError(f'sample_anchor_and_negative: num_frames must be > 0, got {num_frames}; '
                         'the video could not be decoded or is empty')
    rng = rng if rng is not None else np.random.default_rng()
    span = span_len if span_len is not None else clip_len * frame_interval
    hi = max(num_frames - span, 0)
    s = int(rng.integers(0, hi + 1))
    s2 = int(rng.integers(0, hi + 1))
    if abs(s2 - s) < min_offset:
        s2 = (s2 + max(num_frames // 3, 1)) % num_frames
        if abs(s2 - s) < min_offset and num_frames > 2 * min_offset:
            s2 = (s + min_offset) % num_frames
    return s, s2


def temporal_eda(clips: torch.Tensor, ratio: float = 0.1, mode: str = 'swap',
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Break the motion of a clip by swapping or inserting a few frames.

    Args:
        clips (Tensor): shape (B, C, T, H, W).
        ratio (float): fraction of the T frames changed (at least one).
            Defaults to 0.1.
        mode (str): 'swap' exchanges random frame pairs; 'insert' duplicates
            random frames in place and drops the same number from the end so T
            is kept. Defaults to 'swap'.
        generator (torch.Generator, optional): random generator.

    Returns:
        Tensor: a new tensor (B, C, T, H, W); the same frame permutation / index
        map is used for every clip of the batch.
    """
    if clips.dim() != 5:
        raise ValueError(f'temporal_eda: clips must be (B, C, T, H, W), got {tuple(clips.shape)}')
    t = clips.shape[2]
    k = max(1, int(round(ratio * t)))
    if mode == 'swap':
        idx = torch.arange(t)
        for _ in range(k):
            i, j = torch.randint(0, t, (2,), generator=generator).tolist()
            idx[i], idx[j] = idx[j].item(), idx[i].item()
    elif mode == 'insert':
        pos = torch.randint(0, t, (k,), generator=generator)
        counts = torch.ones(t, dtype=torch.long)
        counts.index_add_(0, pos, torch.ones_like(pos))
        idx = torch.repeat_interleave(torch.arange(t), counts)[:t]
    else:
        raise ValueError(f"temporal_eda: mode must be 'swap' or 'insert', got {mode!r}")
    return clips.index_select(2, idx.to(clips.device))


def reverse_time(x: torch.Tensor, dim: int = 2) -> torch.Tensor:
    """Time reversal (a new tensor): clips (B, C, T, H, W) or pooled maps (B, C, T)."""
    return torch.flip(x, dims=(dim,))
