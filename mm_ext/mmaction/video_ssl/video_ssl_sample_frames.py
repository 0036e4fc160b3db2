"""Frame sampling of DSM / BE: the anchor window and a shifted negative window, decoded once."""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform

from mmaction.registry import TRANSFORMS
from mm_ext._registry import register
from mm_ext.core.video import sample_anchor_and_negative, window_indices

__all__ = ['VideoSSLSampleFrames']


@register(TRANSFORMS)
class VideoSSLSampleFrames(BaseTransform):
    """Sample an anchor window W and a temporally shifted window W' of the same video.

    The indices of both windows are written into one ``frame_inds`` array, so a
    following ``DecordDecode`` (or ``RawFrameDecode``) decodes the video once;
    ``VideoSSLMultiView`` then splits the frames into the three views.

    Required Keys:
        - total_frames
        - start_index

    Added Keys:
        - frame_inds: (2 * clip_len,) int64 - anchor window, then negative window
        - clip_len, frame_interval
        - num_clips: 2
        - ssl_window_starts: (2,) 0-based starts (anchor, negative)

    Args:
        clip_len (int): frames per window.
        frame_interval (int): temporal stride. Defaults to 1.
        min_offset (int): minimum start gap between the windows (2 for frame
            folders, 4 for Kinetics in the release). Defaults to 2.
        span_len (int, optional): sampling span; None uses the real clip span
            ``clip_len * frame_interval``, 32 (DSM) or 16 (BE) reproduce the
            release. Defaults to None.
        seed (int, optional): seed of a private generator (tests); None uses
            numpy's global state. Defaults to None.
    """

    def __init__(self, clip_len: int, frame_interval: int = 1, min_offset: int = 2,
                 span_len: Optional[int] = None, seed: Optional[int] = None):
        if clip_len < 1 or frame_interval < 1:
            raise ValueError(f'VideoSSLSampleFrames: clip_len and frame_interval must be >= 1, got '
                             f'{clip_len} and {frame_interval}')
        self.clip_len = clip_len
        self.frame_interval = frame_interval
        self.min_offset = min_offset
        self.span_len = span_len
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def transform(self, results: dict) -> dict:
        n = int(results['total_frames'])
        rng = self._rng if self._rng is not None else np.random.default_rng(
            np.random.randint(0, 2**31 - 1))
        s, s2 = sample_anchor_and_negative(n, self.clip_len, self.frame_interval,
                                           self.min_offset, self.span_len, rng)
        inds = np.concatenate([window_indices(s, self.clip_len, self.frame_interval, n),
                               window_indices(s2, self.clip_len, self.frame_interval, n)])
        results['frame_inds'] = inds + results.get('start_index', 0)
        results['clip_len'] = self.clip_len
        results['frame_interval'] = self.frame_interval
        results['num_clips'] = 2
        results['ssl_window_starts'] = np.array([s, s2], dtype=np.int64)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(clip_len={self.clip_len}, frame_interval='
                f'{self.frame_interval}, min_offset={self.min_offset}, span_len={self.span_len}, '
                f'seed={self.seed})')
