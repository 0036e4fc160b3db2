"""ACT's network: a backbone's pool5 feature plus an FC -> BN -> ReLU embedding (torch only)."""
import torch
import torch.nn as nn

from .coteaching import batch_hard_triplet_per_sample

__all__ = ['ACTNet', 'act_triplet_per_sample']


class ACTNet(nn.Module):
    """Backbone -> global average pool ("pool5") -> FC -> BN -> ReLU ("embedding").

    Train mode returns ``(pool5 (B, C), embedding (B, emb_dim))``; eval mode returns pool5 (ACT
    tests on pool5 with the un-normalised Euclidean distance). There is no classifier: ACT uses
    no identity loss, so a source-trained checkpoint's classifier is simply not loaded.

    Args:
        backbone (nn.Module): ``backbone(x (B, 3, H, W)) -> (B, feat_dim, h, w)`` (e.g.
            :func:`reid_ext.models.backbones.build_backbone`).
        feat_dim (int): channels of the feature maps.
        emb_dim (int): embedding size. Defaults to 2048 (ACT).
    """

    def __init__(self, backbone: nn.Module, feat_dim: int, emb_dim: int = 2048):
        super().__init__()
        self.backbone = backbone
        self.feat_dim, self.emb_dim = feat_dim, emb_dim
        self.embedding = nn.Sequential(nn.Linear(feat_dim, emb_dim), nn.BatchNorm1d(emb_dim),
                                       nn.ReLU(inplace=True))
        nn.init.kaiming_normal_(self.embedding[0].weight, mode='fan_out')
        nn.init.zeros_(self.embedding[0].bias)

    def forward(self, x: torch.Tensor):
        pool5 = self.backbone(x).mean(dim=(2, 3))
        if not self.training:
            return pool5
        return pool5, self.embedding(pool5)


def act_triplet_per_sample(outputs, labels: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """ACT's per-sample loss: batch-hard triplet on pool5 plus on the embedding, (B,)."""
    pool5, emb = outputs
    return (batch_hard_triplet_per_sample(pool5, labels, margin) +
            batch_hard_triplet_per_sample(emb, labels, margin))
