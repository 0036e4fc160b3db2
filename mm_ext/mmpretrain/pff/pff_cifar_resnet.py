"""CIFAR ResNet-(6n+2) with 1×1-conv projection shortcuts as an mmpretrain backbone."""
from typing import Optional, Tuple

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from mm_ext._registry import register
from mm_ext.core.pruning import CifarResNet

from ._init import PFFInitMixin


@register(MODELS)
class PFFCifarResNet(PFFInitMixin, CifarResNet, BaseModule):
    """ResNet20/32/56/110 for CIFAR as used by PFF (3 stages of basic blocks, widths 16/32/64,
    1×1 conv + BN shortcuts where shapes change).

    mmpretrain's ``ResNet_CIFAR`` only has the ImageNet depths (18, 34, 50, ...), hence this
    backbone: x (B, 3, 32, 32) -> ``(feat,)`` with feat (B, 4·base_channels, 8, 8).

    Args:
        depth (int): 6n + 2. Defaults to 56.
        base_channels (int): first-stage width. Defaults to 16.
        in_channels (int): input channels. Defaults to 3.
        bn_weight_init (float): BN γ initial value (0.5 in the official code). Defaults to 0.5.
        init_cfg (dict, optional): mmengine init config; None = official init. Defaults to None.
    """

    def __init__(self, depth: int = 56, base_channels: int = 16, in_channels: int = 3,
                 bn_weight_init: float = 0.5, init_cfg: Optional[dict] = None):
        super().__init__(depth=depth, base_channels=base_channels, in_channels=in_channels)
        self.init_cfg = init_cfg
        self.bn_weight_init = bn_weight_init

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        return (CifarResNet.forward(self, x), )
