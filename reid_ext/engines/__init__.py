"""torchreid engines of reid_ext (subclasses of ``torchreid.engine.Engine``)."""
from .base_engine import ReidExtEngine
from .softmax_engine import ReidSoftmaxEngine
from .va_reid_engine import VAReIDEngine

__all__ = ['ReidExtEngine', 'ReidSoftmaxEngine', 'VAReIDEngine']
