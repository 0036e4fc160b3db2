"""CIFAR VGG ("network-slimming" variant) as an mmpretrain backbone."""
from typing import Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from mm_ext._registry import register
from mm_ext.core.pruning import CIFAR_VGG16_CFG, CifarVGG

from ._init import PFFInitMixin


@register(MODELS)
class PFFCifarVGG(PFFInitMixin, CifarVGG, BaseModule):
    """VGG16 for CIFAR as used by PFF (13 conv3×3-BN-ReLU, 2×2 average pool at the end).

    mmpretrain's ``VGG`` is the ImageNet network (with its own classifier), so this
    variant is provided: x (B, 3, 32, 32) -> ``(feat,)`` with feat (B, C_last, 1, 1); use
    ``GlobalAveragePooling`` + ``LinearClsHead`` on top.

    Args:
        cfg (sequence of int | 'M'): widths and max-pools. Defaults to VGG16
            ``(64, 64, 'M', 128, 128, 'M', 256×3, 'M', 512×3, 'M', 512×3)``.
        in_channels (int): input channels. Defaults to 3.
        bn_weight_init (float): BN γ initial value (0.5 in the official code). Defaults to 0.5.
        init_cfg (dict, optional): mmengine init config; when None the official init
            (Kaiming fan_out convs, BN γ = ``bn_weight_init``) is used. Defaults to None.
    """

    def __init__(self, cfg: Sequence[Union[int, str]] = CIFAR_VGG16_CFG, in_channels: int = 3,
                 bn_weight_init: float = 0.5, init_cfg: Optional[dict] = None):
        super().__init__(cfg=tuple(cfg), in_channels=in_channels)
        self.init_cfg = init_cfg
        self.bn_weight_init = bn_weight_init

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        """x: (B, C, H, W) -> ``(feat,)``, feat (B, C_last, H/16/2, W/16/2)."""
        return (self.features(x), )
