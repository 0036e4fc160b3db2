"""torchreid engines of reid_ext (subclasses of ``torchreid.engine.Engine``), registered in
:mod:`reid_ext.registry` (``engine.name``: ``softmax``, ``va_reid``)."""
from .base_engine import ReidExtEngine, as_outputs
from .softmax_engine import ReidSoftmaxEngine
from .va_reid_engine import VAReIDEngine

__all__ = ['ReidExtEngine', 'ReidSoftmaxEngine', 'VAReIDEngine', 'as_outputs']

