"""Training target of the Nearby Objects Hallucinator: each proposal's second-best GT.

`NOH-NMS <https://arxiv.org/abs/2007.13376>`_, spec ``noh-nms.md`` section 3.1.
"""
from typing import Tuple

import torch
from torch import Tensor

__all__ = ['second_best_overlap']


def second_best_overlap(ious: Tensor) -> Tuple[Tensor, Tensor]:
    """The GT with the second-highest IoU of every proposal (its "nearby object").

    The highest-IoU GT is the proposal's own target; the next one is the person
    next to it. Ties are broken by the lower GT index (stable sort).

    Args:
        ious (Tensor): (P, G) IoU of P proposals with the G (non-ignored) GT boxes.

    Returns:
        tuple[Tensor, Tensor]:

        - nearby_iou (Tensor): (P,) second-highest IoU; 0 when G < 2.
        - nearby_idx (Tensor): (P,) int64 index of that GT; 0 (a dummy) when G < 2.
    """
    if ious.dim() != 2:
        raise ValueError(f'ious must be a (P, G) matrix, got shape {tuple(ious.shape)}')
    p, g = ious.shape
    if g < 2:
        return ious.new_zeros(p), torch.zeros(p, dtype=torch.long, device=ious.device)
    values, order = torch.sort(ious, dim=1, descending=True, stable=True)
    return values[:, 1].contiguous(), order[:, 1].contiguous()
