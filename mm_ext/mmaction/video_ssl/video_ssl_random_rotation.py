"""Clip-consistent random rotation (one angle per clip), as in the DSM / BE augmentation."""
import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmaction.registry import TRANSFORMS
from mm_ext._registry import register

__all__ = ['VideoSSLRandomRotation']


@register(TRANSFORMS)
class VideoSSLRandomRotation(BaseTransform):
    """Rotate every frame of the clip by the same angle drawn from U(-max_angle, max_angle).

    Required Keys:
        - imgs (list of (H, W, C) arrays)

    Modified Keys:
        - imgs

    Args:
        max_angle (float): degrees. Defaults to 10 (release).
    """

    def __init__(self, max_angle: float = 10.0):
        if max_angle < 0:
            raise ValueError(f'VideoSSLRandomRotation: max_angle must be >= 0, got {max_angle}')
        self.max_angle = max_angle

    @cache_randomness
    def _draw_angle(self) -> float:
        return float(np.random.uniform(-self.max_angle, self.max_angle))

    def transform(self, results: dict) -> dict:
        angle = self._draw_angle()
        h, w = results['imgs'][0].shape[:2]
        mat = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
        results['imgs'] = [cv2.warpAffine(im, mat, (w, h), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REFLECT_101)
                           for im in results['imgs']]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(max_angle={self.max_angle})'
