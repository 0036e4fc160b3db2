"""Input normalisation of the DSM / BE Kinetics loader as one affine map (spec decision 6).

The release's Kinetics loader scales pixels to [-1, 1] and then applies the
ImageNet normalisation ``(x - m) / s`` (m, s in [0, 1] units) on top. The
composition is again ``(pixel - mean') / std'`` with ``mean' = 127.5 (1 + m)``
and ``std' = 127.5 s`` in 0-255 pixel units, so the parity option is just the
mean / std of mmaction's ``ActionDataPreprocessor``.
"""
from typing import Sequence, Tuple

__all__ = ['IMAGENET_MEAN', 'IMAGENET_STD', 'double_normalization_mean_std']

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def double_normalization_mean_std(mean: Sequence[float] = IMAGENET_MEAN,
                                  std: Sequence[float] = IMAGENET_STD
                                  ) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Pixel-unit (0-255) mean and std equal to "[-1, 1] scaling, then (x - mean) / std".

    Args:
        mean (Sequence[float]): second-stage mean (ImageNet, [0, 1] units).
        std (Sequence[float]): second-stage std (ImageNet, [0, 1] units).

    Returns:
        tuple: (mean', std') per channel for ``(pixel - mean') / std'``.
    """
    if len(mean) != len(std) or any(s <= 0 for s in std):
        raise ValueError(f'double_normalization_mean_std: mean and std must have equal length and '
                         f'std > 0, got {mean}, {std}')
    return (tuple(127.5 * (1.0 + m) for m in mean), tuple(127.5 * s for s in std))
