"""Host-agnostic mmengine helpers used by ``tools/train.py`` and ``tools/test.py``."""
from .launch import add_common_args, build_runner, init_cpu_distributed, prepare_cfg

__all__ = ['add_common_args', 'build_runner', 'init_cpu_distributed', 'prepare_cfg']
