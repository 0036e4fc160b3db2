"""Host-agnostic mmengine helpers used by ``tools/train.py`` and ``tools/test.py``."""
from .launch import init_cpu_distributed, prepare_cfg

__all__ = ['init_cpu_distributed', 'prepare_cfg']
