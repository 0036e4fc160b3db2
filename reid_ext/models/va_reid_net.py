"""VA-reID network: BNNeck backbone with an identity and an identity-viewpoint classifier.

`Viewpoint-Aware Loss with Angular Regularization for Person Re-Identification
<https://arxiv.org/abs/1912.01300>`_. Heads (spec, decision 11):

- ``head='linear'`` (default): bias-free linear identity classifier over N identities and
  bias-free linear VALSR classifier over the identity-viewpoint classes, both on the BNNeck
  feature (the official model: reid-strong-baseline with two classifiers);
- ``head='cosine'``: both classifiers on the hypersphere (:class:`reid_ext.core.NormLinear`;
  ``W`` identity centres, ``U`` viewpoint prototypes), for the VAAL loss (behind its flag).

The identity-viewpoint classes are all ``N * V`` pairs (dense, Tencent's re-implementation) or,
after :meth:`VAReIDNet.set_observed_pairs`, only the (pid, view) pairs seen in the training set
(the official classifier): the buffer :attr:`observed` selects the rows of the classifier, so a
checkpoint carries the class set. An optional linear viewpoint classifier on the detached BN
feature (``fallback_classifier=True``) predicts viewpoints for images without labels.
"""
import torch
import torch.nn as nn

from reid_ext.core.norm_linear import NormLinear
from reid_ext.core.va_losses import PairClasses, pair_classes

from .backbones import build_backbone

__all__ = ['VAReIDNet', 'va_reid_tiny', 'va_reid_resnet18', 'va_reid_resnet50', 'va_reid_se_resnext101']

_HEADS = ('linear', 'cosine')


class VAReIDNet(nn.Module):
    """VA-reID model.

    Eval mode returns the BN feature (B, D) (torchreid contract). Train mode returns a dict:

    - ``feat`` (B, D): pooled feature before the BNNeck (triplet loss),
    - ``id_scores`` (B, N): identity logits (``head='linear'``) or cosines to W (``'cosine'``),
    - ``view_scores`` (B, K): the same for the K identity-viewpoint classes (:attr:`pair_classes`),
    - ``vp_logits`` (B, V): fallback viewpoint classifier on the detached BN feature (only with
      ``fallback_classifier=True``).

    Args:
        num_classes (int): N training identities.
        loss (str): accepted for torchreid's ``build_model``; unused. Defaults to ``softmax``.
        backbone (str): Defaults to ``resnet50``.
        last_stride (int): Defaults to 1.
        pretrained (bool): Defaults to False.
        num_views (int): V. Defaults to 3 (front, side, back).
        head (str): ``linear`` or ``cosine``. Defaults to ``linear``.
        fallback_classifier (bool): add the viewpoint classifier. Defaults to False.
    """

    def __init__(self, num_classes: int, loss: str = 'softmax', backbone: str = 'resnet50',
                 last_stride: int = 1, pretrained: bool = False, num_views: int = 3,
                 head: str = 'linear', fallback_classifier: bool = False, **kwargs):
        super().__init__()
        if head not in _HEADS:
            raise ValueError(f'head must be one of {_HEADS}, got {head!r}')
        self.num_classes, self.num_views, self.head = num_classes, num_views, head
        self.backbone = build_backbone(backbone, last_stride, pretrained)
        self.feature_dim = d = self.backbone.out_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.bnneck = nn.BatchNorm1d(d)
        self.bnneck.bias.requires_grad_(False)
        if head == 'linear':
            self.id_head = nn.Linear(d, num_classes, bias=False)
            self.view_head = nn.Linear(d, num_classes * num_views, bias=False)
            nn.init.normal_(self.id_head.weight, std=0.001)
            nn.init.normal_(self.view_head.weight, std=0.001)
        else:
            self.id_head = NormLinear(d, num_classes)
            self.view_head = NormLinear(d, num_classes * num_views)
        self.viewpoint_classifier = nn.Linear(d, num_views) if fallback_classifier else None
        self.register_buffer('observed', torch.ones(num_classes, num_views, dtype=torch.bool))

    @torch.no_grad()
    def set_observed_pairs(self, observed: torch.Tensor) -> None:
        """Restrict the identity-viewpoint classifier to the pairs ``observed`` ((N, V) bool)."""
        pair_classes(self.num_classes, self.num_views, observed.cpu().bool())  # validates
        self.observed.copy_(observed.to(self.observed.device).bool())

    @property
    def pair_classes(self) -> PairClasses:
        """The K identity-viewpoint classes (row k of ``view_scores``)."""
        return pair_classes(self.num_classes, self.num_views, self.observed)

    @property
    def view_weight(self) -> torch.Tensor:
        """(K, D) weights (prototypes) of the K identity-viewpoint classes."""
        return self.view_head.weight[self.observed.reshape(-1)]

    def forward(self, x: torch.Tensor):
        f = self.pool(self.backbone(x)).flatten(1)
        fb = self.bnneck(f)
        if not self.training:
            return fb
        view = self.view_head(fb)
        if not bool(self.observed.all()):
            view = view[:, self.observed.reshape(-1)]
        out = dict(feat=f, id_scores=self.id_head(fb), view_scores=view)
        if self.viewpoint_classifier is not None:
            out['vp_logits'] = self.viewpoint_classifier(fb.detach())
        return out


def _make(backbone):
    def factory(num_classes, loss='softmax', pretrained=False, **kwargs):
        return VAReIDNet(num_classes, loss, backbone, last_stride=kwargs.pop('last_stride', 1),
                         pretrained=pretrained, num_views=kwargs.pop('num_views', 3),
                         head=kwargs.pop('head', 'linear'),
                         fallback_classifier=kwargs.pop('fallback_classifier', False))
    factory.__name__ = factory.__qualname__ = f'va_reid_{backbone}'
    return factory


va_reid_tiny = _make('tiny')
va_reid_resnet18 = _make('resnet18')
va_reid_resnet50 = _make('resnet50')
va_reid_se_resnext101 = _make('se_resnext101')
