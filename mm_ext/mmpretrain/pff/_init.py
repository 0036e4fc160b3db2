"""Official PFF initialisation for the CIFAR backbones (spec A.5)."""
import torch.nn as nn


def pff_init_(module: nn.Module, bn_weight_init: float) -> None:
    """Kaiming-normal (fan_out, ReLU) conv weights, BN γ = ``bn_weight_init``, β = 0.

    Filter Skeletons are left untouched (they stay at 1).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.constant_(m.weight, bn_weight_init)
            nn.init.zeros_(m.bias)


class PFFInitMixin:
    """``init_weights`` for the PFF CIFAR backbones: the official init unless ``init_cfg`` is set.

    Put it before the network class and ``BaseModule`` in the bases; the subclass sets
    ``self.init_cfg`` and ``self.bn_weight_init``.
    """

    def init_weights(self) -> None:
        if self.init_cfg is not None:
            from mmengine.model import BaseModule
            return BaseModule.init_weights(self)
        pff_init_(self, self.bn_weight_init)
