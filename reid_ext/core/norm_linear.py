"""Classifier on the hypersphere: cosine between L2-normalised features and weights (torch only).

VA-reID (`arXiv 1912.01300 <https://arxiv.org/abs/1912.01300>`_, Sec. 3) projects every
viewpoint onto one hypersphere: features and class prototypes are unit vectors and the score is
their cosine (times a scale ``s`` for the softmax).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['NormLinear']


class NormLinear(nn.Module):
    """``cos(f, W_k)`` for every class k, optionally scaled.

    Args:
        in_features (int): D.
        out_features (int): K classes (prototypes).
        scale (float): multiplier of the cosine in :meth:`forward`. Defaults to 1 (raw cosine).

    Shape:
        input (B, D) -> output (B, K).
    """

    def __init__(self, in_features: int, out_features: int, scale: float = 1.0):
        super().__init__()
        self.in_features, self.out_features, self.scale = in_features, out_features, scale
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))

    def extra_repr(self) -> str:
        return f'in_features={self.in_features}, out_features={self.out_features}, scale={self.scale}'
