"""Projection head of DSM / BE: global average pool -> Linear(C, 128) -> L2 normalise."""
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['ProjectionHead']


class ProjectionHead(nn.Module):
    """One linear layer on pooled features, L2-normalised (no MLP, no BN, as released).

    Args:
        in_channels (int): C, backbone output channels.
        out_channels (int): embedding size. Defaults to 128.

    Shapes:
        (B, C, T, H, W) feature map, or already pooled (B, C) -> (B, out_channels),
        unit L2 norm per row.
    """

    def __init__(self, in_channels: int, out_channels: int = 128):
        super().__init__()
        self.fc = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            x = x.mean(dim=(2, 3, 4))
        elif x.dim() != 2:
            raise ValueError(f'ProjectionHead: expected (B, C, T, H, W) or (B, C), got '
                             f'{tuple(x.shape)}')
        return F.normalize(self.fc(x), dim=1)
