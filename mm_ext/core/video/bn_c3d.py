"""C3D with batch normalisation and a global pool5, the retrieval backbone of the DSM / BE papers.

C3D: `Tran et al., ICCV 2015 <https://arxiv.org/abs/1412.0767>`_; the BN variant
with an adaptive pool5 (512-d features, any input size) is the one of the
video-SSL retrieval tables (VCOP, DSM, BE). Layer names (conv1, bn1, ...,
conv5b, bn5b) follow that layout so that official checkpoints load by name.
"""
import torch
import torch.nn as nn

__all__ = ['BNC3D']

# name, in, out (channels before width scaling); pools after conv1, conv2, conv3b, conv4b
_C3D_LAYERS = (('1', 3, 64), ('2', 64, 128), ('3a', 128, 256), ('3b', 256, 256),
               ('4a', 256, 512), ('4b', 512, 512), ('5a', 512, 512), ('5b', 512, 512))
_POOLS = {'1': (1, 2, 2), '2': (2, 2, 2), '3b': (2, 2, 2), '4b': (2, 2, 2)}


class BNC3D(nn.Module):
    """C3D conv1 - conv5b, each conv 3x3x3 + BN + ReLU; max-pools (1,2,2), (2,2,2) x 3.

    Args:
        in_channels (int): input channels. Defaults to 3.
        width_ratio (float): channel multiplier (1.0 = the paper's 512-d
            conv5; smaller for tests). Defaults to 1.0.

    Shapes:
        (B, C_in, T, H, W) -> conv5b map (B, 512 * width_ratio, T / 8, H / 16, W / 16)
        (floor divisions). Global average pooling of this map is the "pool5"
        feature used for retrieval (done by the neck / ``extract_feat``).
    """

    def __init__(self, in_channels: int = 3, width_ratio: float = 1.0):
        super().__init__()
        if width_ratio <= 0:
            raise ValueError(f'BNC3D: width_ratio must be > 0, got {width_ratio}')

        def c(v):
            return max(1, int(round(v * width_ratio)))

        for name, cin, cout in _C3D_LAYERS:
            cin = in_channels if name == '1' else c(cin)
            self.add_module(f'conv{name}', nn.Conv3d(cin, c(cout), 3, padding=1))
            self.add_module(f'bn{name}', nn.BatchNorm3d(c(cout)))
            if name in _POOLS:
                self.add_module(f'pool{name[0]}', nn.MaxPool3d(_POOLS[name], _POOLS[name]))
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = c(512)

    def init_weights(self) -> None:
        """Xavier-uniform (gain sqrt 2) convs with zero bias, BN weight ~ N(1, 0.02) (release init)."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.xavier_uniform_(m.weight, gain=2 ** 0.5)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T, H, W) -> conv5b feature map (B, out_channels, T', H', W')."""
        for name, _, _ in _C3D_LAYERS:
            x = self.relu(getattr(self, f'bn{name}')(getattr(self, f'conv{name}')(x)))
            if name in _POOLS:
                x = getattr(self, f'pool{name[0]}')(x)
        return x
