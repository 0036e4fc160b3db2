"""Linear warm-up followed by multi-step decay, stepped once per epoch (torch only).

torchreid ships no warm-up scheduler; the BoT-style recipes of VA-reID / PISNet / CACE-Net
start at ``warmup_factor * lr`` and reach ``lr`` linearly after ``warmup_epochs`` epochs.
"""
from bisect import bisect_right
from typing import Sequence

from torch.optim.lr_scheduler import LRScheduler

__all__ = ['WarmupMultiStepLR']


class WarmupMultiStepLR(LRScheduler):
    """``lr(e) = base_lr * w(e) * gamma ** #{m in milestones : m <= e}``.

    ``w(e) = warmup_factor + (1 - warmup_factor) * e / warmup_epochs`` for ``e < warmup_epochs``,
    else 1 (``e`` = number of completed epochs).

    Args:
        optimizer (Optimizer): wrapped optimiser.
        milestones (Sequence[int]): increasing epochs at which the LR is multiplied by gamma.
        gamma (float): decay factor. Defaults to 0.1.
        warmup_factor (float): LR fraction at epoch 0. Defaults to 0.01.
        warmup_epochs (int): length of the linear warm-up; 0 disables it. Defaults to 10.
        last_epoch (int): index of the last epoch, for resuming. Defaults to -1.
    """

    def __init__(self, optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 warmup_factor: float = 0.01, warmup_epochs: int = 10, last_epoch: int = -1):
        milestones = list(milestones)
        if milestones != sorted(milestones):
            raise ValueError(f'milestones must be increasing, got {milestones}')
        if warmup_epochs < 0 or not 0 < warmup_factor <= 1:
            raise ValueError(f'need warmup_epochs >= 0 and 0 < warmup_factor <= 1, got '
                             f'{warmup_epochs}, {warmup_factor}')
        self.milestones, self.gamma = milestones, gamma
        self.warmup_factor, self.warmup_epochs = warmup_factor, warmup_epochs
        super().__init__(optimizer, last_epoch)

    def _factor(self, e: int) -> float:
        w = 1.0
        if e < self.warmup_epochs:
            w = self.warmup_factor + (1 - self.warmup_factor) * e / self.warmup_epochs
        return w * self.gamma ** bisect_right(self.milestones, e)

    def get_lr(self):
        return [base * self._factor(self.last_epoch) for base in self.base_lrs]
