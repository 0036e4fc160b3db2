"""torch/numpy-only algorithms of the re-ID plugins (no torchreid import)."""
from .rank import evaluate_rank_fast
from .va_losses import (adaptive_lsr_targets, soft_cross_entropy, static_direction_lsr_targets,
                        vaal_loss, valsr_loss, valsr_targets)
from .norm_linear import NormLinear
from .warmup import WarmupMultiStepLR

__all__ = [
    'evaluate_rank_fast', 'valsr_targets', 'valsr_loss', 'static_direction_lsr_targets',
    'adaptive_lsr_targets', 'soft_cross_entropy', 'vaal_loss', 'NormLinear', 'WarmupMultiStepLR'
]
