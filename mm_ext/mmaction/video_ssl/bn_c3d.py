"""mmaction2 registration of the BN-C3D backbone (the DSM / BE retrieval tables' C3D)."""
from mmaction.registry import MODELS
from mm_ext._registry import register
from mm_ext.core.video.bn_c3d import BNC3D as _CoreC3D
from .frozen_backbone import FrozenMixin

__all__ = ['BNC3D']


@register(MODELS)
class BNC3D(FrozenMixin, _CoreC3D):
    """C3D with BN: (N, 3, T, H, W) -> conv5b map (N, 512, T/8, H/16, W/16).

    Its global average ("pool5", 512-d) is the retrieval feature of the papers:
    ``VideoContrastive`` in 'predict' / 'tensor' mode and ``I3DHead`` pool it.

    Args:
        in_channels (int): input channels. Defaults to 3.
        width_ratio (float): channel-width multiplier (1.0 = paper). Defaults to 1.0.
        frozen (bool): freeze all parameters and keep BN in eval mode (linear
            evaluation). Defaults to False.
    """

    def __init__(self, in_channels: int = 3, width_ratio: float = 1.0, frozen: bool = False):
        super().__init__(in_channels, width_ratio)
        self._init_frozen(frozen)
