"""Backbones returning feature maps, with a configurable last stride (BoT: last stride 1)."""
import importlib

import torch.nn as nn

__all__ = ['build_backbone']


class _TorchvisionResNet(nn.Module):

    def __init__(self, depth: int, last_stride: int, pretrained: bool):
        super().__init__()
        import torchvision
        fn = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34,
              50: torchvision.models.resnet50, 101: torchvision.models.resnet101}[depth]
        # pretrained=True needs the ImageNet weights pre-placed in the torch hub cache (no network)
        net = fn(weights='IMAGENET1K_V1' if pretrained else None)
        if last_stride == 1:
            block = net.layer4[0]
            (block.conv2 if depth >= 50 else block.conv1).stride = (1, 1)
            block.downsample[0].stride = (1, 1)
        self.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2,
                                  net.layer3, net.layer4)
        self.out_channels = net.fc.in_features

    def forward(self, x):
        return self.body(x)


class _TinyResNet(nn.Module):
    """Four stages of one BasicBlock each, widths (32, 64, 128, 256): for CPU demos and tests."""

    def __init__(self, last_stride: int):
        super().__init__()
        from torchvision.models.resnet import BasicBlock
        layers = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True)]
        cin = 32
        for i, cout in enumerate((32, 64, 128, 256)):
            stride = 1 if i == 0 else (last_stride if i == 3 else 2)
            down = None
            if stride != 1 or cin != cout:
                down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            layers.append(BasicBlock(cin, cout, stride, down))
            cin = cout
        self.body = nn.Sequential(*layers)
        self.out_channels = cin

    def forward(self, x):
        return self.body(x)


class _SEResNeXt101(nn.Module):

    def __init__(self, last_stride: int, pretrained: bool):
        super().__init__()
        senet = importlib.import_module('torchreid.reid.models.senet')
        net = senet.SENet(num_classes=1, loss='softmax', block=senet.SEResNeXtBottleneck,
                          layers=[3, 4, 23, 3], groups=32, reduction=16, dropout_p=None,
                          inplanes=64, input_3x3=False, downsample_kernel_size=1,
                          downsample_padding=0, last_stride=last_stride, fc_dims=None)
        if pretrained:  # torchreid's own loader; the file must be in the torch hub cache
            senet.init_pretrained_weights(
                net, senet.pretrained_settings['se_resnext101_32x4d']['imagenet']['url'])
        self.net = net
        self.out_channels = 2048

    def forward(self, x):
        return self.net.featuremaps(x)


def build_backbone(name: str, last_stride: int = 1, pretrained: bool = False) -> nn.Module:
    """Backbone with ``out_channels``; ``forward(x (B, 3, H, W)) -> (B, out_channels, h, w)``.

    Args:
        name (str): ``resnet18|resnet34|resnet50|resnet101|se_resnext101|tiny``.
        last_stride (int): stride of the last stage, 1 (BoT) or 2. Defaults to 1.
        pretrained (bool): ImageNet weights (must be pre-placed in the hub cache). Defaults to False.
    """
    if last_stride not in (1, 2):
        raise ValueError(f'last_stride must be 1 or 2, got {last_stride}')
    if name.startswith('resnet') and name[6:].isdigit() and int(name[6:]) in (18, 34, 50, 101):
        return _TorchvisionResNet(int(name[6:]), last_stride, pretrained)
    if name == 'tiny':
        if pretrained:
            raise ValueError('the tiny backbone has no pretrained weights; set pretrained=False')
        return _TinyResNet(last_stride)
    if name == 'se_resnext101':
        return _SEResNeXt101(last_stride, pretrained)
    raise ValueError(f'unknown backbone {name!r}; use '
                     'resnet18|resnet34|resnet50|resnet101|se_resnext101|tiny')
