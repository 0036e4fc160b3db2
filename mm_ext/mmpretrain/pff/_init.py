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
