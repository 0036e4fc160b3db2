"""Crowd-aware NMS ops (torch only): NOH-NMS, Adaptive-NMS, thresholded Soft-NMS,
and the NOH training target (second-best GT).

:func:`crowd_nms_reference` is the per-box loop used by tests and the benchmark.
"""
from .adaptive_nms import adaptive_nms
from .batched import CROWD_NMS_METHODS, batched_crowd_nms
from .nearby_targets import second_best_overlap
from .noh_nms import noh_nms
from .reference import crowd_nms_reference
from .soft_nms import thresholded_soft_nms

__all__ = ['noh_nms', 'adaptive_nms', 'thresholded_soft_nms', 'crowd_nms_reference',
           'second_best_overlap', 'batched_crowd_nms', 'CROWD_NMS_METHODS']
