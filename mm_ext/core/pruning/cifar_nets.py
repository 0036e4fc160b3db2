"""The two CIFAR networks of the PFF paper, torch only (PFF arXiv 2009.14410, Sec. 4.1).

- VGG16, the "network-slimming" CIFAR variant (Liu et al., ICCV 2017): 13 conv3×3-BN-ReLU
  layers with widths ``CIFAR_VGG16_CFG`` ('M' = 2×2 max-pool), then a 2×2 average pool,
  giving (B, 512, 1, 1) features for a single linear classifier.
- ResNet56 for CIFAR: 3×3 conv(16)-BN-ReLU stem, 3 stages × 9 basic blocks with widths
  16/32/64 (strides 1/2/2), 1×1-conv + BN projection shortcuts ("option B") where shapes
  change.
"""
from typing import List, Sequence, Union

import torch
import torch.nn as nn

__all__ = ['CIFAR_VGG16_CFG', 'CifarVGG', 'CifarBasicBlock', 'CifarResNet']

CIFAR_VGG16_CFG = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512)


class CifarVGG(nn.Module):
    """VGG for 32×32 inputs: x (B, 3, 32, 32) -> features (B, C_last, 1, 1).

    Args:
        cfg (sequence of int | 'M'): conv widths and max-pools. Defaults to VGG16.
        in_channels (int): input channels. Defaults to 3.
    """

    def __init__(self, cfg: Sequence[Union[int, str]] = CIFAR_VGG16_CFG, in_channels: int = 3):
        super().__init__()
        layers: List[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == 'M':
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, int(v), 3, padding=1, bias=False), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                c = int(v)
        layers.append(nn.AvgPool2d(2))
        self.features = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class CifarBasicBlock(nn.Module):
    """Basic block: conv3×3-BN-ReLU-conv3×3-BN, + shortcut (identity or 1×1 conv + BN), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        out += identity  # in place (as torchvision's blocks): no new activation tensor; bn2's backward needs no output
        return self.relu(out)


class CifarResNet(nn.Module):
    """CIFAR ResNet (depth = 6n + 2): x (B, 3, H, W) -> features (B, 64·w, H/4, W/4).

    Args:
        depth (int): 20, 32, 44, 56, 110, ... Defaults to 56.
        base_channels (int): stem / first-stage width. Defaults to 16.
        in_channels (int): input channels. Defaults to 3.
    """

    def __init__(self, depth: int = 56, base_channels: int = 16, in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f'CifarResNet: depth must be 6n + 2 (20, 32, 56, ...), got {depth}')
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, base_channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels)
        self.relu = nn.ReLU(inplace=True)
        c = base_channels
        stages = []
        for i, w in enumerate((base_channels, base_channels * 2, base_channels * 4)):
            blocks = []
            for b in range(n):
                blocks.append(CifarBasicBlock(c, w, 2 if (b == 0 and i > 0) else 1))
                c = w
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))
