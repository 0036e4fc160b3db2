"""NOH-NMS (Nearby Objects Hallucinator) for mmdet: heads, targets, metric, NMS config keys.

`NOH-NMS: Improving Pedestrian Detection by Nearby Objects Hallucination
<https://arxiv.org/abs/2007.13376>`_. The NMS maths lives in :mod:`mm_ext.core.nms`.
Importing this package also makes ``nms=dict(type='crowd_nms', ...)`` available to
every mmdet head (:mod:`mm_ext.mmdet.noh.crowd_nms`).
"""
from .crowd_human_recall_metric import CrowdHumanRecallMetric
from .crowd_nms import register_crowd_nms_type
from .noh_avg_pool_fpn import NOHAvgPoolFPN
from .noh_bbox_head import NOHBBoxHead
from .noh_ioa_ignore_assigner import NOHIoAIgnoreAssigner
from .noh_nearby_assigner import NOHNearbyAssigner
from .noh_roi_head import NOHRoIHead
from .noh_rpn_head import NOHRPNHead
from .noh_select_body_box import NOHSelectBodyBox
from .noh_tta_model import NOHTTAModel

register_crowd_nms_type()

__all__ = ['NOHAvgPoolFPN', 'NOHBBoxHead', 'NOHRoIHead', 'NOHRPNHead', 'NOHNearbyAssigner', 'NOHIoAIgnoreAssigner',
           'CrowdHumanRecallMetric', 'NOHSelectBodyBox', 'NOHTTAModel']
