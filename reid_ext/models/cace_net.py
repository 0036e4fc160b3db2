"""CACE-Net (Siamese-GCN) model for torchreid's factory (spec reid.md §1.2, decisions 1-3).

Backbone (ResNet-50, last stride 1, non-local blocks) -> feature maps; shared head
[GAP ‖ GMP] -> 1x1 to 768 -> BN (GeM option) for the individual maps and for the conditional
maps of image pairs (:class:`reid_ext.core.cace.CorrespondenceGCN`); separate classifiers.

Train mode: ``model(x)`` returns ``{'logits', 'feat', 'maps'}`` (the individual branch only: the
baseline); ``model(x, pair_index=(pi, pj))`` also runs the pair branch and adds ``logits_ij``,
``logits_ji``, ``feat_ij``, ``feat_ji`` (the engine passes the pairs through the model's own
forward so DDP sees one forward). Eval mode returns the L2-normalised individual embedding and
never builds pair tensors (the YouReID OOM); :meth:`CACENet.pair_features` scores given maps for
the opt-in top-k re-scoring.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from reid_ext.core.cace import CorrespondenceGCN, GeM, NonLocalBlock

from .backbones import build_backbone

__all__ = ['CACENet', 'CACEHead', 'cace_net', 'cace_net_tiny']


class CACEHead(nn.Module):
    """Shared encoder: pooling -> 1x1 (linear) to ``embed_dim`` -> BN; training adds
    ReLU -> Dropout(0.5) before the (separate, bias-free) classifiers.

    Args:
        channels (int): C of the maps. embed_dim (int): Defaults to 768.
        pooling (str): ``avgmax`` ([GAP ‖ GMP], TF release, default) or ``gem`` (p = 3, YouReID).
        dropout (float): Defaults to 0.5.
    """

    def __init__(self, channels: int, embed_dim: int = 768, pooling: str = 'avgmax',
                 dropout: float = 0.5):
        super().__init__()
        if pooling not in ('avgmax', 'gem'):
            raise ValueError(f"cace pooling must be 'avgmax' or 'gem', got {pooling!r}")
        self.pooling = pooling
        self.gem = GeM(3.0) if pooling == 'gem' else None
        cin = 2 * channels if pooling == 'avgmax' else channels
        self.reduce = nn.Linear(cin, embed_dim, bias=False)
        self.bn = nn.BatchNorm1d(embed_dim)
        self.drop = nn.Sequential(nn.ReLU(inplace=False), nn.Dropout(dropout))

    def pool_nodes(self, nodes: torch.Tensor) -> torch.Tensor:
        """(P, HW, C) nodes -> (P, 2C) [mean ‖ max] or (P, C) GeM."""
        if self.gem is not None:
            return nodes.clamp(min=self.gem.eps).pow(self.gem.p).mean(1).pow(1.0 / self.gem.p)
        return torch.cat([nodes.mean(1), nodes.amax(1)], dim=1)

    def embed(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) maps -> (B, embed_dim) BN embedding."""
        if self.gem is not None:
            pooled = self.gem(maps)
        else:
            pooled = torch.cat([maps.mean((2, 3)), maps.amax((2, 3))], dim=1)
        return self.embed_pooled(pooled)

    def embed_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """Pooled (B, 2C or C) -> (B, embed_dim): 1x1 reduction + BN."""
        return self.bn(self.reduce(pooled))


def _insert_non_local(backbone: nn.Module, count: int) -> None:
    """Put ``count`` non-local blocks after the last ``count`` residual blocks of stage 3."""
    if count <= 0:
        return
    body = backbone.body
    stage_idx = 6 if len(body) == 8 else 5  # torchvision: conv,bn,relu,pool,l1..l4; tiny: 3+4
    stage = body[stage_idx]
    blocks = list(stage) if isinstance(stage, nn.Sequential) else [stage]
    channels = blocks[-1].conv1.out_channels * blocks[-1].expansion
    n = len(blocks)
    out = []
    for k, blk in enumerate(blocks):
        out.append(blk)
        if k >= n - count:
            out.append(NonLocalBlock(channels))
    if count > n:
        out.extend(NonLocalBlock(channels) for _ in range(count - n))
    body[stage_idx] = nn.Sequential(*out)


class CACENet(nn.Module):
    """CACE-Net (see module docstring).

    Args:
        num_classes (int): training identities.
        loss (str): accepted for torchreid's factory signature; the outputs are a dict.
        backbone (str): :func:`reid_ext.models.backbones.build_backbone` name. Defaults to resnet50.
        last_stride (int): Defaults to 1. pretrained (bool): ImageNet weights (hub cache).
        non_local (int): non-local blocks in stage 3. Defaults to 3.
        embed_dim (int): Defaults to 768. pooling (str): ``avgmax`` or ``gem``.
        reduction (int): graph compression of W_y / W_g. Defaults to 16.
        dropout (float): Defaults to 0.5.
    """

    def __init__(self, num_classes: int, loss: str = 'softmax', backbone: str = 'resnet50',
                 last_stride: int = 1, pretrained: bool = False, non_local: int = 3,
                 embed_dim: int = 768, pooling: str = 'avgmax', reduction: int = 16,
                 dropout: float = 0.5, **kwargs):
        super().__init__()
        self.loss = loss
        self.backbone = build_backbone(backbone, last_stride, pretrained)
        _insert_non_local(self.backbone, non_local)
        c = self.backbone.out_channels
        self.gcn = CorrespondenceGCN(c, reduction)
        self.head = CACEHead(c, embed_dim, pooling, dropout)
        self.feature_dim = embed_dim
        #: pool the conditional maps without materialising them (avgmax head); False = the
        #: straightforward dense path (same values and gradients, kept for reference)
        self.fast_pairs = True
        self.classifier = nn.Linear(embed_dim, num_classes, bias=False)
        self.pair_classifier = nn.Linear(embed_dim, num_classes, bias=False)
        for fc in (self.classifier, self.pair_classifier):
            nn.init.normal_(fc.weight, std=0.001)

    def pair_features(self, maps: torch.Tensor, pi: torch.Tensor, pj: torch.Tensor,
                      return_attention: bool = False):
        """Conditional embeddings ``f_{i|j}``, ``f_{j|i}`` (P, D) of pairs of ``maps``."""
        if self.head.gem is None and not return_attention and self.fast_pairs:
            # fast path: [mean ‖ max] pooled without building the (P, 2HW, C) conditional maps
            pooled = torch.cat(self.gcn.pooled_avgmax(maps, pi, pj))
        else:
            out = self.gcn.forward_nodes(maps, pi, pj, return_attention=return_attention)
            pooled = torch.cat([self.head.pool_nodes(out[0]), self.head.pool_nodes(out[1])])
        f_ij, f_ji = self.head.embed_pooled(pooled).chunk(2)
        return (f_ij, f_ji, out[2]) if return_attention else (f_ij, f_ji)

    def forward(self, x: torch.Tensor,
                pair_index: Optional[Tuple[torch.Tensor, torch.Tensor]] = None):
        maps = self.backbone(x)
        feat = self.head.embed(maps)
        if not self.training:
            return F.normalize(feat, dim=1)
        out = {'logits': self.classifier(self.head.drop(feat)), 'feat': feat, 'maps': maps}
        if pair_index is not None:
            pi, pj = pair_index
            f_ij, f_ji = self.pair_features(maps, pi, pj)
            out.update(feat_ij=f_ij, feat_ji=f_ji,
                       logits_ij=self.pair_classifier(self.head.drop(f_ij)),
                       logits_ji=self.pair_classifier(self.head.drop(f_ji)))
        return out


def cace_net(num_classes, loss='softmax', pretrained=False, **kwargs):
    """ResNet-50 (last stride 1, 3 non-local blocks) CACE-Net."""
    kwargs.pop('use_gpu', None)
    kwargs.setdefault('backbone', 'resnet50')
    return CACENet(num_classes, loss, pretrained=pretrained, **kwargs)


def cace_net_tiny(num_classes, loss='softmax', pretrained=False, **kwargs):
    """Tiny-backbone CACE-Net for CPU tests and the quick synth-ped config (1 non-local block,
    128-d embedding by default)."""
    kwargs.pop('use_gpu', None)
    kwargs['backbone'] = 'tiny'
    kwargs.setdefault('non_local', 1)
    kwargs.setdefault('embed_dim', 128)
    return CACENet(num_classes, loss, pretrained=pretrained, **kwargs)


def register() -> None:
    """Add ``cace_net`` / ``cace_net_tiny`` to torchreid's model factory (idempotent)."""
    from reid_ext._register import register_model
    register_model('cace_net', cace_net)
    register_model('cace_net_tiny', cace_net_tiny)
