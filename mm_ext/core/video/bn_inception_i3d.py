"""I3D on BN-Inception-v1, the backbone of the DSM and BE/TBE papers (1024-d output).

`Quo Vadis, Action Recognition? A New Model and the Kinetics Dataset
<https://arxiv.org/abs/1705.07750>`_, Fig. 3 (Inflated Inception-V1 with batch
normalisation). Implemented from the paper's architecture table; the stem has
7x7x7 / stride 2 conv, the Inception blocks keep their 2D channel widths.
"""
import torch
import torch.nn as nn

__all__ = ['BNInceptionI3D', 'I3D_INCEPTION_BLOCKS']

# name -> (in, b0, b1_reduce, b1, b2_reduce, b2, pool_proj)
I3D_INCEPTION_BLOCKS = (
    ('mixed_3b', 192, 64, 96, 128, 16, 32, 32),
    ('mixed_3c', 256, 128, 128, 192, 32, 96, 64),
    ('pool_4a', ),
    ('mixed_4b', 480, 192, 96, 208, 16, 48, 64),
    ('mixed_4c', 512, 160, 112, 224, 24, 64, 64),
    ('mixed_4d', 512, 128, 128, 256, 24, 64, 64),
    ('mixed_4e', 512, 112, 144, 288, 32, 64, 64),
    ('mixed_4f', 528, 256, 160, 320, 32, 128, 128),
    ('pool_5a', ),
    ('mixed_5b', 832, 256, 160, 320, 32, 128, 128),
    ('mixed_5c', 832, 384, 192, 384, 48, 128, 128),
)


class _Unit3d(nn.Sequential):
    """Conv3d (no bias) + BN3d + ReLU with 'same'-style padding."""

    def __init__(self, cin: int, cout: int, k=1, s=1):
        k = (k, k, k) if isinstance(k, int) else tuple(k)
        s = (s, s, s) if isinstance(s, int) else tuple(s)
        pad = tuple(x // 2 for x in k)
        super().__init__(
            nn.Conv3d(cin, cout, k, s, pad, bias=False),
            nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01),
            nn.ReLU(inplace=True))


class _Inception3d(nn.Module):
    """Four branches: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max-pool -> 1x1."""

    def __init__(self, cin, b0, b1r, b1, b2r, b2, bp):
        super().__init__()
        self.b0 = _Unit3d(cin, b0)
        self.b1 = nn.Sequential(_Unit3d(cin, b1r), _Unit3d(b1r, b1, 3))
        self.b2 = nn.Sequential(_Unit3d(cin, b2r), _Unit3d(b2r, b2, 3))
        self.b3 = nn.Sequential(nn.MaxPool3d(3, 1, 1), _Unit3d(cin, bp))
        self.out_channels = b0 + b1 + b2 + bp

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], 1)


class BNInceptionI3D(nn.Module):
    """BN-Inception-v1 I3D feature extractor.

    Args:
        in_channels (int): input channels. Defaults to 3.
        width_ratio (float): multiplies every channel width (1.0 = the paper's
            network, 1024-d output; smaller values for tests). Defaults to 1.0.

    Shapes:
        input (B, C_in, T, H, W) -> ``mixed_5c`` map (B, 1024 * width_ratio,
        ceil(T / 8), ceil(H / 32), ceil(W / 32)).
    """

    def __init__(self, in_channels: int = 3, width_ratio: float = 1.0):
        super().__init__()
        if width_ratio <= 0:
            raise ValueError(f'BNInceptionI3D: width_ratio must be > 0, got {width_ratio}')

        def c(x):
            return max(1, int(round(x * width_ratio)))

        self.stem = nn.Sequential(
            _Unit3d(in_channels, c(64), 7, 2),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            _Unit3d(c(64), c(64), 1),
            _Unit3d(c(64), c(192), 3),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        blocks = []
        cin = c(192)
        for spec in I3D_INCEPTION_BLOCKS:
            if spec[0] == 'pool_4a':
                blocks.append((spec[0], nn.MaxPool3d(3, 2, 1)))
                continue
            if spec[0] == 'pool_5a':
                blocks.append((spec[0], nn.MaxPool3d(2, 2, 0, ceil_mode=True)))
                continue
            m = _Inception3d(cin, *[c(v) for v in spec[2:]])
            cin = m.out_channels
            blocks.append((spec[0], m))
        self.blocks = nn.Sequential()
        for name, m in blocks:
            self.blocks.add_module(name, m)
        self.out_channels = cin

    def init_weights(self) -> None:
        """Xavier-uniform (gain sqrt 2) convs, BN weight ~ N(1, 0.02), bias 0 (release init)."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.xavier_uniform_(m.weight, gain=2 ** 0.5)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T, H, W) -> mixed_5c feature map (B, out_channels, T', H', W')."""
        return self.blocks(self.stem(x))
