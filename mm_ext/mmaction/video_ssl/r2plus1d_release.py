"""R(2+1)D in the DSM / BE release's layout, built on mmaction2's ``ResNet2Plus1d``.

The release's R(2+1)D (``r2p1d``, stage blocks (1, 1, 1, 1), 512-d) and
mmaction2's ``ResNet2Plus1d`` agree in every convolution whose temporal kernel
is 3, but differ in two places:

* the factorised (2+1)D convolution's middle width. The release uses the
  paper's M = floor(t*d*d*N_in*N_out / (d*d*N_in + t*N_out)) with the real
  temporal kernel t; mmaction2 writes 3 for t. For the 1x1x1 shortcut
  ("downsample") of stages 2-4 this gives 42 / 85 / 170 channels in the release
  and 54 / 109 / 219 in mmaction2, so the release's shortcut weights do not fit;
* the stem: the release has no max-pool after ``conv1``, while
  ``ResNet2Plus1d.forward`` always applies one (it ignores ``with_pool1``).

``ResNet2Plus1dRelease`` rebuilds every ``Conv2plus1d`` whose middle width
differs from the paper formula and honours ``with_pool1`` (default False, as the
release), so an official checkpoint converted with
``tools/convert_dsm_be_checkpoint.py --arch r2p1d`` loads strictly and gives the
release's features. With the default arguments it is the 10-layer network of
the release; every ``ResNet3d`` argument still applies.
"""
import math

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model.weight_init import constant_init, kaiming_init

from mmaction.models.backbones.resnet2plus1d import ResNet2Plus1d
from mmaction.models.common import Conv2plus1d
from mmaction.registry import MODELS
from mm_ext._registry import register

__all__ = ['ResNet2Plus1dRelease', 'release_mid_channels']


def release_mid_channels(in_channels: int, out_channels: int, kernel_size) -> int:
    """Middle width of a factorised (2+1)D conv as the paper (and the release) define it."""
    t, h, w = kernel_size
    return int(math.floor(t * h * w * in_channels * out_channels /
                          (h * w * in_channels + t * out_channels)))


def _set_mid_channels(conv: Conv2plus1d, mid: int) -> None:
    """Rebuild ``conv``'s spatial conv, its BN and the temporal conv around ``mid`` channels."""
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    bias = conv.conv_s.bias is not None
    conv.conv_s = nn.Conv3d(conv.in_channels, mid, (1, k[1], k[2]), stride=(1, s[1], s[2]),
                            padding=(0, p[1], p[2]), bias=bias)
    _, conv.bn_s = build_norm_layer(conv.norm_cfg, mid)
    conv.conv_t = nn.Conv3d(mid, conv.out_channels, (k[0], 1, 1), stride=(s[0], 1, 1),
                            padding=(p[0], 0, 0), bias=bias)
    kaiming_init(conv.conv_s)
    kaiming_init(conv.conv_t)
    constant_init(conv.bn_s, 1, bias=0)


@register(MODELS)
class ResNet2Plus1dRelease(ResNet2Plus1d):
    """``ResNet2Plus1d`` with the release's (2+1)D middle widths and optional stem pool.

    Args:
        with_pool1 (bool): max-pool after the stem. Defaults to False (release).
        Other arguments: as ``ResNet3d``; the defaults give the release's
        10-layer R(2+1)D (depth 18 with stage blocks (1, 1, 1, 1), (3, 7, 7)
        stem with stride (1, 2, 2), stride 2 in time and space in stages 2-4).
    """

    def __init__(self, depth: int = 18, pretrained=None, pretrained2d: bool = False,
                 stage_blocks=(1, 1, 1, 1), conv_cfg=dict(type='Conv2plus1d'),
                 norm_cfg=dict(type='BN3d', requires_grad=True), conv1_kernel=(3, 7, 7),
                 conv1_stride_t: int = 1, pool1_stride_t: int = 1, with_pool1: bool = False,
                 inflate=(1, 1, 1, 1), spatial_strides=(1, 2, 2, 2),
                 temporal_strides=(1, 2, 2, 2), zero_init_residual: bool = False, **kwargs):
        super().__init__(depth=depth, pretrained=pretrained, pretrained2d=pretrained2d,
                         stage_blocks=stage_blocks, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                         conv1_kernel=conv1_kernel, conv1_stride_t=conv1_stride_t,
                         pool1_stride_t=pool1_stride_t, with_pool1=with_pool1, inflate=inflate,
                         spatial_strides=spatial_strides, temporal_strides=temporal_strides,
                         zero_init_residual=zero_init_residual, **kwargs)
        for m in self.modules():
            if isinstance(m, Conv2plus1d):
                mid = release_mid_channels(m.in_channels, m.out_channels, m.kernel_size)
                if mid != m.conv_s.out_channels:
                    _set_mid_channels(m, mid)
        self._freeze_stages()  # rebuilt convs of frozen stages stay frozen

    def forward(self, x):
        """(N, 3, T, H, W) -> last stage's map (N, 512 * width, T', H', W')."""
        x = self.conv1(x)
        if self.with_pool1:
            x = self.maxpool(x)
        for name in self.res_layers:
            x = getattr(self, name)(x)
        return x
