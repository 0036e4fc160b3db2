"""torchreid models of reid_ext (registered into torchreid's factory by ``import reid_ext``)."""
from .bnneck_resnet import (BNNeckReID, bnneck_resnet18, bnneck_resnet50, bnneck_se_resnext101,
                            bnneck_tiny)
from .va_reid_net import (VAReIDNet, va_reid_resnet18, va_reid_resnet50, va_reid_se_resnext101,
                          va_reid_tiny)

__all__ = ['BNNeckReID', 'bnneck_tiny', 'bnneck_resnet18', 'bnneck_resnet50', 'bnneck_se_resnext101',
           'VAReIDNet',
           'va_reid_tiny', 'va_reid_resnet18',
           'va_reid_resnet50', 'va_reid_se_resnext101']
