"""mmaction2 registration of the BN-Inception I3D backbone (DSM / BE papers' main backbone)."""
from mmaction.registry import MODELS
from mm_ext._registry import register
from mm_ext.core.video.bn_inception_i3d import BNInceptionI3D as _CoreI3D
from .frozen_backbone import FrozenMixin

__all__ = ['BNInceptionI3D']


@register(MODELS)
class BNInceptionI3D(FrozenMixin, _CoreI3D):
    """BN-Inception-v1 I3D backbone: (N, 3, T, H, W) -> mixed_5c map (N, 1024, T/8, H/32, W/32).

    Args:
        in_channels (int): input channels. Defaults to 3.
        width_ratio (float): channel-width multiplier (1.0 = paper). Defaults to 1.0.
        frozen (bool): freeze all parameters and keep BN in eval mode (linear
            evaluation). Defaults to False.
    """

    def __init__(self, in_channels: int = 3, width_ratio: float = 1.0, frozen: bool = False):
        super().__init__(in_channels, width_ratio)
        self._init_frozen(frozen)
