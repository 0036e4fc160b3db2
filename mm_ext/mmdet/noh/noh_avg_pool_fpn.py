"""FPN whose extra levels come from 2 x 2 average pooling (official NOH-NMS P6)."""
from typing import Tuple

import torch.nn.functional as F
from torch import Tensor

from mmdet.models.necks import FPN
from mmdet.registry import MODELS

from mm_ext._registry import register


@register(MODELS)
class NOHAvgPoolFPN(FPN):
    """:class:`FPN` with P6 (and further extra levels) = 2 x 2 average pooling, stride 2.

    The official NOH-NMS model builds P6 by average-pooling P5 with a 2 x 2 window and
    stride 2, no padding (spec ``noh-nms.md`` sections 5 and 7.1); mmdet's FPN without
    extra convolutions subsamples with a 1 x 1 max-pool instead. The output sizes agree
    when P5's size is even (e.g. inputs padded to a multiple of 64); for odd sizes
    the 2 x 2 pool drops the last row/column. Takes the arguments of :class:`FPN`
    with ``add_extra_convs=False``.

    Returns (from ``forward``): tuple[Tensor], ``num_outs`` maps (B, C, H_l, W_l).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.add_extra_convs:
            raise ValueError('NOHAvgPoolFPN pools its extra levels: set add_extra_convs=False')

    def forward(self, inputs: Tuple[Tensor]) -> tuple:
        outs = list(super().forward(inputs))
        n_backbone = self.backbone_end_level - self.start_level
        for i in range(n_backbone, self.num_outs):  # replace the 1 x 1 max-pool levels
            outs[i] = F.avg_pool2d(outs[i - 1], kernel_size=2, stride=2)
        return tuple(outs)
