"""Multi-view packing of DSM / BE: anchor and positive from window W, negative from W'."""
import copy
from typing import List

import numpy as np
from mmcv.transforms import BaseTransform, Compose

from mmaction.registry import TRANSFORMS
from mm_ext._registry import register

__all__ = ['VideoSSLMultiView']


@register(TRANSFORMS)
class VideoSSLMultiView(BaseTransform):
    """Run a per-view pipeline on the decoded windows and stack the views.

    The decoded ``imgs`` (2 * clip_len frames from ``VideoSSLSampleFrames``) are
    split into the anchor window and the negative window. The view pipeline
    (clip-consistent augmentation ending in ``FormatShape('NCTHW')``) runs twice
    on the anchor window (independent draws: anchor, positive) and once on the
    negative window.

    Required Keys:
        - imgs (list of 2 * clip_len arrays (H, W, 3))
        - clip_len

    Modified Keys:
        - imgs: ndarray (3, C, T, H', W') - anchor, positive, negative
        - num_clips: 3
        - img_shape, input_shape

    Args:
        transforms (list[dict]): the per-view pipeline; it must end with
            ``FormatShape(input_format='NCTHW')`` and yield one clip per view.
    """

    def __init__(self, transforms: List[dict]):
        if not transforms:
            raise ValueError('VideoSSLMultiView: transforms must be a non-empty per-view pipeline '
                             "ending with dict(type='FormatShape', input_format='NCTHW')")
        self.pipeline = Compose([TRANSFORMS.build(t) if isinstance(t, dict) else t
                                 for t in transforms])

    def transform(self, results: dict) -> dict:
        imgs = results['imgs']
        t = int(results['clip_len'])
        if len(imgs) != 2 * t:
            raise ValueError(f'VideoSSLMultiView: expected 2 * clip_len = {2 * t} decoded frames, got '
                             f'{len(imgs)}; put VideoSSLSampleFrames + a decode step before it')
        views = []
        for frames in (imgs[:t], imgs[:t], imgs[t:]):
            r = {k: v for k, v in results.items() if k != 'imgs'}
            r = copy.deepcopy(r)
            r['imgs'] = list(frames)
            r['num_clips'] = 1
            r['clip_len'] = t
            out = self.pipeline(r)
            if out is None or np.asarray(out['imgs']).shape[0] != 1:
                raise ValueError('VideoSSLMultiView: the view pipeline must give one clip '
                                 '(1, C, T, H, W); end it with FormatShape(input_format="NCTHW")')
            views.append(out)
        results['imgs'] = np.concatenate([v['imgs'] for v in views], 0)
        results['num_clips'] = 3
        results['img_shape'] = views[0]['img_shape']
        results['input_shape'] = results['imgs'].shape
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(pipeline={self.pipeline})'
