"""NOH-NMS (Nearby Objects Hallucinator) for mmdet: heads, targets, metric.

`NOH-NMS: Improving Pedestrian Detection by Nearby Objects Hallucination
<https://arxiv.org/abs/2007.13376>`_. The NMS maths lives in :mod:`mm_ext.core.nms`.
"""
from .crowd_human_recall_metric import CrowdHumanRecallMetric
from .noh_avg_pool_fpn import NOHAvgPoolFPN
from .noh_bbox_head import NOHBBoxHead
from .noh_ioa_ignore_assigner import NOHIoAIgnoreAssigner
from .noh_nearby_assigner import NOHNearbyAssigner
from .noh_roi_head import NOHRoIHead

__all__ = ['NOHAvgPoolFPN', 'NOHBBoxHead', 'NOHRoIHead', 'NOHNearbyAssigner', 'NOHIoAIgnoreAssigner',
           'CrowdHumanRecallMetric']
