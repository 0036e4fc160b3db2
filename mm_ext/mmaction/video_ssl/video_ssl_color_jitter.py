"""Clip-consistent colour jitter with torchvision-style factors (DSM / BE augmentation).

mmaction2 1.2.0's ``ColorJitter`` fixes the order of its four operations once at
construction and its hue step overflows uint8 under numpy 2 (``OverflowError``
for negative offsets); this transform draws factors *and* order once per clip.
"""
import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmaction.registry import TRANSFORMS
from mm_ext._registry import register

__all__ = ['VideoSSLColorJitter']


def _gray(x: np.ndarray) -> np.ndarray:
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


@register(TRANSFORMS)
class VideoSSLColorJitter(BaseTransform):
    """Brightness, contrast, saturation and hue jitter, one draw per clip, random order.

    Factors as in torchvision: brightness / contrast / saturation factors are
    drawn from U(max(0, 1 - v), 1 + v), the hue shift from U(-hue, hue) (fraction
    of the hue circle, hue <= 0.5).

    Required Keys:
        - imgs (list of (H, W, 3) RGB uint8 / float arrays)

    Modified Keys:
        - imgs (float32 in [0, 255])

    Args:
        brightness (float): Defaults to 0.5 (release).
        contrast (float): Defaults to 0.5.
        saturation (float): Defaults to 0.25.
        hue (float): Defaults to 0.5.
    """

    def __init__(self, brightness: float = 0.5, contrast: float = 0.5, saturation: float = 0.25,
                 hue: float = 0.5):
        for name, v in (('brightness', brightness), ('contrast', contrast),
                        ('saturation', saturation)):
            if v < 0:
                raise ValueError(f'VideoSSLColorJitter: {name} must be >= 0, got {v}')
        if not 0 <= hue <= 0.5:
            raise ValueError(f'VideoSSLColorJitter: hue must be in [0, 0.5], got {hue}')
        self.brightness, self.contrast, self.saturation, self.hue = (brightness, contrast,
                                                                     saturation, hue)

    @cache_randomness
    def _draw(self):
        def f(v):
            return float(np.random.uniform(max(0.0, 1 - v), 1 + v))

        return (np.random.permutation(4), f(self.brightness), f(self.contrast),
                f(self.saturation), float(np.random.uniform(-self.hue, self.hue)))

    def transform(self, results: dict) -> dict:
        order, b, c, s, h = self._draw()
        x = np.stack(results['imgs']).astype(np.float32)  # (T, H, W, 3)
        for op in order:
            if op == 0:
                x = x * b
            elif op == 1:
                mean = _gray(x).mean(axis=(1, 2), keepdims=True)[..., None]
                x = c * x + (1 - c) * mean
            elif op == 2:
                x = s * x + (1 - s) * _gray(x)[..., None]
            elif h != 0.0:
                u8 = np.clip(x, 0, 255).astype(np.uint8)
                shift = int(round(h * 180))
                out = []
                for im in u8:
                    hsv = cv2.cvtColor(im, cv2.COLOR_RGB2HSV)
                    hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
                    out.append(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))
                x = np.stack(out).astype(np.float32)
            x = np.clip(x, 0, 255)
        results['imgs'] = list(x)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness={self.brightness}, contrast='
                f'{self.contrast}, saturation={self.saturation}, hue={self.hue})')
