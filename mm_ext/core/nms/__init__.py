"""Crowd-aware NMS ops (torch + numpy only): NOH-NMS, Adaptive-NMS, thresholded
Soft-NMS, mmcv-compatible Soft-NMS, the batched dispatcher over the family, and
the NOH training target (second-best GT).

Testing helpers (the per-box reference loop, synthetic crowds) live in
:mod:`mm_ext.core.nms.testing`.
"""
from .adaptive_nms import adaptive_nms
from .batched import CROWD_NMS_METHODS, batched_crowd_nms
from .nearby_targets import second_best_overlap
from .noh_nms import noh_nms
from .soft_nms import thresholded_soft_nms

__all__ = ['noh_nms', 'adaptive_nms', 'thresholded_soft_nms', 'second_best_overlap', 'batched_crowd_nms',
           'CROWD_NMS_METHODS']
