"""MaxIoU assignment with the official NOH-NMS IoA rule for ignore regions."""
from typing import Optional

import torch
from mmengine.structures import InstanceData

from mmdet.models.task_modules.assigners import AssignResult, MaxIoUAssigner
from mmdet.registry import TASK_UTILS

from mm_ext._registry import register


@register(TASK_UTILS)
class NOHIoAIgnoreAssigner(MaxIoUAssigner):
    """:class:`MaxIoUAssigner` whose ignore regions follow the NOH-NMS matcher.

    A proposal whose best IoU with the normal GTs is below ``pos_iou_thr`` and whose
    IoA (intersection over the proposal's area) with some ignore region is larger
    than that best IoU is ignored (``gt_inds = -1``), spec ``noh-nms.md`` section 5.
    mmdet's ``ignore_iof_thr`` instead ignores every proposal above a fixed IoF.
    All arguments are those of :class:`MaxIoUAssigner` (``ignore_iof_thr`` is not used).
    """

    def assign(self, pred_instances: InstanceData, gt_instances: InstanceData,
               gt_instances_ignore: Optional[InstanceData] = None, **kwargs) -> AssignResult:
        result = super().assign(pred_instances, gt_instances, None, **kwargs)
        if gt_instances_ignore is None or len(gt_instances_ignore) == 0:
            return result
        priors = pred_instances.priors
        if priors.numel() == 0:
            return result
        ioa = self.iou_calculator(priors, gt_instances_ignore.bboxes.to(priors.device), mode='iof')
        best_ioa = ioa.max(dim=1).values
        ignore = (result.max_overlaps < self.pos_iou_thr) & (best_ioa > result.max_overlaps)
        result.gt_inds = torch.where(ignore, torch.full_like(result.gt_inds, -1), result.gt_inds)
        if result.labels is not None:
            result.labels = torch.where(ignore, torch.full_like(result.labels, -1), result.labels)
        return result
