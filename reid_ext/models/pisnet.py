"""PISNet (arXiv 2008.06963): Siamese BNNeck ResNet with query-guided attention (spec §2.2).

:class:`PISNet` extends the BoT :class:`~reid_ext.models.bnneck_resnet.BNNeckReID` (same
parameter names, so a stage-1 checkpoint loads as is) with a query-guided attention block
(``qgab``) and the guidance-reversed attention module (``gram``). All images go through the one
shared backbone (Siamese).

* train mode, ``forward(g, q1, q2)`` -> dict: ``logits`` / ``feat`` of the gallery guided by q1
  (BNNeck logits, pooled feature before BN), ``q1_feat`` (q1's plain pooled feature),
  ``gq2_feat`` (the gallery guided by q2), ``gram_logits`` (GRAM over [F_q1 || sg(F_q2)] guided
  by the q1-guided gallery map, through BNNeck and the classifier).
  ``release_wiring=True`` reproduces the release: ``q1_feat``, ``gq2_feat`` and the GRAM feature
  are all the main feature (MPS = margin with zero gradient; GRAM re-weights the main CE).
* eval mode, ``forward(x)`` -> the plain BN feature (B, D) (torchreid contract; the query's
  un-attended feature); ``guided_features(g_maps, q_maps)`` -> BN features of galleries
  conditioned on queries, from backbone maps computed once (``maps(x)``).
"""
import torch
import torch.nn as nn

from reid_ext.core.pisnet import QueryGuidedAttention, corrupt_query

from .bnneck_resnet import BNNeckReID

__all__ = ['PISNet', 'pisnet_resnet50', 'pisnet_tiny']


class PISNet(BNNeckReID):
    """BNNeck backbone + QGAB + GRAM.

    Args:
        num_classes (int): training identities.
        backbone (str): ``resnet50`` (paper) or ``tiny`` (tests/quick configs).
        last_stride (int): 1 (paper).
        pyramid (str): QGAB/GRAM guide pooling, ``'s2'`` (scripts) | ``'none'`` | ``'yes'``.
        inter_channels (int): attention channels; default half the backbone's (1024 for R-50).
        gram (bool): build the GRAM branch (``SIA_REG yes``). Defaults to True.
        release_wiring (bool): reproduce the release's auxiliary-feature wiring. Defaults to False.
        attention_only (bool): freeze every parameter but the attention blocks' (stage 2; done at
            construction so that a DDP wrapper built afterwards sees the final trainable set).
    """

    def __init__(self, num_classes: int, loss: str = 'triplet', backbone: str = 'resnet50',
                 last_stride: int = 1, pretrained: bool = False, pyramid: str = 's2',
                 inter_channels: int = None, gram: bool = True, release_wiring: bool = False,
                 attention_only: bool = False, **kwargs):
        super().__init__(num_classes, 'triplet', backbone, last_stride, pretrained)
        self.backbone_name, self.last_stride = backbone, last_stride  # stage-1 twin (pre-selection)
        d = self.feature_dim
        self.qgab = QueryGuidedAttention(d, inter_channels, pyramid)
        self.gram = QueryGuidedAttention(d, inter_channels, pyramid) if gram else None
        self.release_wiring = release_wiring
        if attention_only:
            keep = {id(p) for p in self.attention_parameters()}
            for p in self.parameters():
                p.requires_grad_(id(p) in keep)

    def stage1_twin(self, num_classes: int = None) -> BNNeckReID:
        """A fresh BoT :class:`BNNeckReID` of this network's backbone (the stage-1 architecture;
        its state-dict keys are this network's minus the attention blocks)."""
        return BNNeckReID(num_classes or self.classifier.out_features, 'triplet',
                          self.backbone_name, self.last_stride)

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone maps (B, D, h, w)."""
        return self.backbone(x)

    def _pool(self, m):
        return self.pool(m).flatten(1)

    def guided_features(self, g_maps: torch.Tensor, q_maps: torch.Tensor) -> torch.Tensor:
        """BN features (B, D) of gallery maps guided by query maps (pairs row by row)."""
        return self.bnneck(self._pool(self.qgab(g_maps, q_maps)[0]))

    def attention(self, g_maps: torch.Tensor, q_maps: torch.Tensor) -> torch.Tensor:
        """QGAB weights (B, 1, h, w) over the gallery positions (for pictures)."""
        return self.qgab.weights(g_maps, q_maps)

    def attention_parameters(self):
        """The parameters stage 2 trains (QGAB, GRAM)."""
        mods = [self.qgab] + ([self.gram] if self.gram is not None else [])
        return [p for m in mods for p in m.parameters()]

    def forward(self, g, q1=None, q2=None):
        if not self.training or q1 is None:
            if self.training:
                raise ValueError('PISNet in train mode needs (gallery, q1, q2) images')
            return self.bnneck(self._pool(self.maps(g)))
        b = g.shape[0]
        m = self.maps(torch.cat([g, q1, q2]))                  # Siamese: one shared backbone
        fg, fq1, fq2 = m[:b], m[b:2 * b], m[2 * b:]
        g1 = self.qgab(fg, fq1)[0]
        feat = self._pool(g1)
        logits = self.classifier(self.bnneck(feat))
        out = dict(logits=logits, feat=feat)
        if self.release_wiring:  # the release: every auxiliary feature is the main one
            out.update(q1_feat=feat, gq2_feat=feat, gram_logits=logits)
            return out
        out['q1_feat'] = self._pool(fq1)
        out['gq2_feat'] = self._pool(self.qgab(fg, fq2)[0])
        if self.gram is not None:
            z = self.gram(corrupt_query(fq1, fq2), g1)[0]
            out['gram_logits'] = self.classifier(self.bnneck(self._pool(z)))
        else:
            out['gram_logits'] = logits
        return out


def pisnet_resnet50(num_classes, loss='triplet', pretrained=False, **kwargs):
    kwargs.setdefault('last_stride', 1)
    return PISNet(num_classes, loss, 'resnet50', pretrained=pretrained, **kwargs)


def pisnet_tiny(num_classes, loss='triplet', pretrained=False, **kwargs):
    kwargs.setdefault('last_stride', 1)
    return PISNet(num_classes, loss, 'tiny', pretrained=pretrained, **kwargs)
