"""VA-reID network: BNNeck backbone with identity and identity-viewpoint classifiers on one hypersphere.

`Viewpoint-Aware Loss with Angular Regularization for Person Re-Identification
<https://arxiv.org/abs/1912.01300>`_: the BN feature and every class prototype are L2-normalised
(:class:`reid_ext.core.NormLinear`); ``W`` (N prototypes) are the identity centres and ``U``
(N * V prototypes, row ``i * V + v``) the viewpoint prototypes. A small linear viewpoint
classifier on the detached feature fills in viewpoints for images without labels.
"""
import torch
import torch.nn as nn

from reid_ext.core import NormLinear

from .backbones import build_backbone

__all__ = ['VAReIDNet', 'va_reid_tiny', 'va_reid_resnet18', 'va_reid_resnet50', 'va_reid_se_resnext101']


class VAReIDNet(nn.Module):
    """VA-reID model.

    Eval mode returns the BN feature (B, D) (torchreid contract; test with
    ``normalize_feature=True``: the cosine geometry of training). Train mode returns a dict:

    - ``feat`` (B, D): pooled feature before the BNNeck (triplet loss),
    - ``id_cosine`` (B, N): cosines to the identity prototypes W,
    - ``view_cosine`` (B, N * V): cosines to the viewpoint prototypes U,
    - ``view_logits`` (B, V): fallback viewpoint classifier on the detached BN feature.

    Args:
        num_classes (int): N training identities.
        loss (str): accepted for torchreid's ``build_model``; unused. Defaults to ``softmax``.
        backbone (str): Defaults to ``resnet50``.
        last_stride (int): Defaults to 1.
        pretrained (bool): Defaults to False.
        num_views (int): V. Defaults to 3 (front, side, back).
    """

    def __init__(self, num_classes: int, loss: str = 'softmax', backbone: str = 'resnet50',
                 last_stride: int = 1, pretrained: bool = False, num_views: int = 3, **kwargs):
        super().__init__()
        self.num_classes, self.num_views = num_classes, num_views
        self.backbone = build_backbone(backbone, last_stride, pretrained)
        self.feature_dim = d = self.backbone.out_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.bnneck = nn.BatchNorm1d(d)
        self.bnneck.bias.requires_grad_(False)
        self.id_head = NormLinear(d, num_classes)
        self.view_head = NormLinear(d, num_classes * num_views)
        self.viewpoint_classifier = nn.Linear(d, num_views)

    def forward(self, x: torch.Tensor):
        f = self.pool(self.backbone(x)).flatten(1)
        fb = self.bnneck(f)
        if not self.training:
            return fb
        return dict(feat=f, id_cosine=self.id_head(fb), view_cosine=self.view_head(fb),
                    view_logits=self.viewpoint_classifier(fb.detach()))


def _make(backbone):
    def factory(num_classes, loss='softmax', pretrained=False, **kwargs):
        return VAReIDNet(num_classes, loss, backbone, last_stride=kwargs.pop('last_stride', 1),
                         pretrained=pretrained, num_views=kwargs.pop('num_views', 3))
    factory.__name__ = factory.__qualname__ = f'va_reid_{backbone}'
    return factory


va_reid_tiny = _make('tiny')
va_reid_resnet18 = _make('resnet18')
va_reid_resnet50 = _make('resnet50')
va_reid_se_resnext101 = _make('se_resnext101')
