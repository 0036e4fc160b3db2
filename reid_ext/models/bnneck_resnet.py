"""BNNeck re-ID baseline (reid-strong-baseline / BoT): backbone -> GAP -> BN -> bias-free FC."""
import torch
import torch.nn as nn

from .backbones import build_backbone

__all__ = ['BNNeckReID', 'bnneck_tiny', 'bnneck_resnet18', 'bnneck_resnet50', 'bnneck_se_resnext101']


class BNNeckReID(nn.Module):
    """Backbone, global average pooling, BNNeck (BN without bias shift) and a bias-free classifier.

    torchreid model contract: eval mode returns the BN feature (B, D); train mode returns the
    logits (B, num_classes) for ``loss='softmax'`` and ``(logits, feat)`` for ``loss='triplet'``,
    ``feat`` (B, D) being the pooled feature before the BN (the triplet feature of BoT).

    Args:
        num_classes (int): training identities.
        loss (str): ``softmax`` or ``triplet``. Defaults to ``softmax``.
        backbone (str): see :func:`build_backbone`. Defaults to ``resnet50``.
        last_stride (int): Defaults to 1.
        pretrained (bool): Defaults to False.
    """

    def __init__(self, num_classes: int, loss: str = 'softmax', backbone: str = 'resnet50',
                 last_stride: int = 1, pretrained: bool = False, **kwargs):
        super().__init__()
        if loss not in ('softmax', 'triplet'):
            raise ValueError(f"loss must be 'softmax' or 'triplet', got {loss!r}")
        self.loss = loss
        self.backbone = build_backbone(backbone, last_stride, pretrained)
        self.feature_dim = d = self.backbone.out_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.bnneck = nn.BatchNorm1d(d)
        self.bnneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(d, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def features(self, x: torch.Tensor):
        """(pooled feature (B, D), BN feature (B, D))."""
        f = self.pool(self.backbone(x)).flatten(1)
        return f, self.bnneck(f)

    def forward(self, x):
        f, fb = self.features(x)
        if not self.training:
            return fb
        logits = self.classifier(fb)
        return logits if self.loss == 'softmax' else (logits, f)


def bnneck_tiny(num_classes, loss='softmax', pretrained=False, **kwargs):
    return BNNeckReID(num_classes, loss, 'tiny', pretrained=pretrained,
                      last_stride=kwargs.pop('last_stride', 1))


def bnneck_resnet18(num_classes, loss='softmax', pretrained=False, **kwargs):
    return BNNeckReID(num_classes, loss, 'resnet18', pretrained=pretrained,
                      last_stride=kwargs.pop('last_stride', 1))


def bnneck_resnet50(num_classes, loss='softmax', pretrained=False, **kwargs):
    return BNNeckReID(num_classes, loss, 'resnet50', pretrained=pretrained,
                      last_stride=kwargs.pop('last_stride', 1))


def bnneck_se_resnext101(num_classes, loss='softmax', pretrained=False, **kwargs):
    """SE-ResNeXt-101 (32x4d) BNNeck: the VA-reID paper's baseline ("SRB", spec 4.5)."""
    return BNNeckReID(num_classes, loss, 'se_resnext101', pretrained=pretrained,
                      last_stride=kwargs.pop('last_stride', 1))
