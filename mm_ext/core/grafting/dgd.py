"""DGD online-distillation term (spec C.2, C.3, decision 17; no official code exists)."""
from typing import List, Sequence

import torch
import torch.nn.functional as F


def dgd_teacher_logits(logits: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Teacher of member k = detached mean of the other members' logits on the same inputs.

    Args:
        logits (sequence of Tensor): N tensors (B, C), one per member, same inputs.

    Returns:
        list[Tensor]: N detached (B, C) teachers. N = 1 has no teacher (ValueError).
    """
    n = len(logits)
    if n < 2:
        raise ValueError('dgd_teacher_logits: DGD needs at least 2 members')
    stacked = torch.stack([z.detach() for z in logits])
    total = stacked.sum(0)
    return [(total - stacked[k]) / (n - 1) for k in range(n)]


def dgd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 2.0,
             mode: str = 'soft_ce') -> torch.Tensor:
    """Distillation loss of one member, averaged over the batch and scaled by T^2.

    ``soft_ce`` (default, the authors' prototype): teacher softmax at temperature 1,
    student log-softmax at T: ``T^2 * mean_b(-sum_k softmax(t)_k * log_softmax(s / T)_k)``.
    ``kl``: symmetric temperatures, ``T^2 * mean_b KL(softmax(t / T) || softmax(s / T))``.

    ``soft_ce`` is minimal at ``s = T * t`` (not at ``s = t``): right for a fixed offline teacher,
    but between online members that teach each other it multiplies the logit scale by T round
    after round (they collapse onto one over-confident class), so online DGD uses ``kl``.

    Args:
        student (Tensor): (B, C) logits with gradient.
        teacher (Tensor): (B, C) logits (detached by the caller or here).
        temperature (float): T. Defaults to 2.
        mode (str): ``'soft_ce'`` or ``'kl'``. Defaults to ``'soft_ce'``.
    """
    if student.shape != teacher.shape or student.dim() != 2:
        raise ValueError(f'dgd_loss: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} '
                         'must both be (B, C)')
    t = float(temperature)
    teacher = teacher.detach().to(student.dtype)
    log_s = F.log_softmax(student / t, dim=1)
    if mode == 'soft_ce':
        p_t = F.softmax(teacher, dim=1)
        per = -(p_t * log_s).sum(1)
    elif mode == 'kl':
        log_t = F.log_softmax(teacher / t, dim=1)
        per = (log_t.exp() * (log_t - log_s)).sum(1)
    else:
        raise ValueError(f"dgd_loss: mode must be 'soft_ce' or 'kl', got {mode!r}")
    return t * t * per.mean()
