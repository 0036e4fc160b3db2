"""NOH training targets: the nearby (second-best) GT of each positive RoI."""
from typing import Tuple

from torch import Tensor

from mmdet.registry import TASK_UTILS
from mmdet.utils import ConfigType

from mm_ext._registry import register
from mm_ext.core.nms import second_best_overlap


@register(TASK_UTILS)
class NOHNearbyAssigner:
    """Assign each RoI its nearby object: the GT with the second-highest IoU.

    `NOH-NMS <https://arxiv.org/abs/2007.13376>`_, spec ``noh-nms.md`` section 3.1.
    Ignore regions are not passed in (mmdet keeps them in ``ignored_instances``),
    so they can never be the nearby object.

    Args:
        iou_calculator (dict): IoU calculator config. Defaults to
            ``dict(type='BboxOverlaps2D')``.
    """

    def __init__(self, iou_calculator: ConfigType = dict(type='BboxOverlaps2D')) -> None:
        self.iou_calculator = TASK_UTILS.build(iou_calculator)

    def assign(self, priors: Tensor, gt_bboxes: Tensor) -> Tuple[Tensor, Tensor]:
        """Nearby IoU and nearby GT box of every prior.

        Args:
            priors (Tensor): (P, 4) RoIs (x1, y1, x2, y2).
            gt_bboxes (Tensor): (G, 4) non-ignored GT boxes (x1, y1, x2, y2).

        Returns:
            tuple[Tensor, Tensor]: ``nearby_iou`` (P,) in [0, 1] (0 when G < 2) and
            ``nearby_bboxes`` (P, 4) (the prior itself when G < 2: a dummy that
            never passes the box-loss IoU gate).
        """
        if gt_bboxes.shape[0] < 2:
            return priors.new_zeros(priors.shape[0]), priors.clone()
        ious = self.iou_calculator(priors, gt_bboxes)
        nearby_iou, nearby_idx = second_best_overlap(ious)
        return nearby_iou, gt_bboxes[nearby_idx]
