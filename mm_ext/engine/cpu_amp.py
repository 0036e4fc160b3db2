"""bfloat16 autocast on CPU for ``--amp`` (mmengine's AmpOptimWrapper requires a GPU)."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from mm_ext._registry import register


@register(OPTIM_WRAPPERS)
class CPUAmpOptimWrapper(OptimWrapper):
    """OptimWrapper whose ``optim_context`` runs under ``torch.autocast('cpu', bfloat16)``.

    bfloat16 has float32's exponent range, so no loss scaling is needed.
    Registered in mmengine's root registry so every host scope finds it.
    """

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield
