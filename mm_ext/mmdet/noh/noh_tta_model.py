"""Test-time augmentation that keeps the NOH outputs (NOH-NMS) through the merge."""
from typing import List

import torch
from mmengine.structures import InstanceData

from mmdet.models.test_time_augs import DetTTAModel
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_flip

from mm_ext._registry import register
from .crowd_nms import run_crowd_nms


@register(MODELS)
class NOHTTAModel(DetTTAModel):
    """:class:`DetTTAModel` whose merge carries ``noh_scores`` / ``noh_bboxes``.

    `NOH-NMS <https://arxiv.org/abs/2007.13376>`_. Each view is predicted with the
    detector's own ``test_cfg`` (NOH-NMS per view); the merge flips the detections
    *and* the hallucinated boxes back to the original image, concatenates the views
    and runs ``tta_cfg.nms`` with the NOH outputs, so any type of
    :mod:`mm_ext.mmdet.noh.crowd_nms` works there (e.g.
    ``tta_cfg=dict(nms=dict(type='noh_nms', iou_threshold=0.5), max_per_img=200)``).
    mmdet's :class:`DetTTAModel` would drop the NOH outputs and only run mmcv ops.

    Args:
        tta_cfg (dict): ``nms`` (an mmdet/crowd NMS config) and ``max_per_img``.
        **kwargs: arguments of :class:`DetTTAModel` (``module``).

    Raises:
        ValueError: when ``tta_cfg.nms`` needs the NOH outputs (``'noh'``,
        ``'adaptive'``) and the detector does not predict them.
    """

    def _merge_single_sample(self, data_samples: List[DetDataSample]) -> DetDataSample:
        preds = [d.pred_instances for d in data_samples]
        with_noh = all('noh_scores' in p and 'noh_bboxes' in p for p in preds)
        boxes, noh_boxes = [], []
        for p, d in zip(preds, data_samples):
            meta = d.metainfo
            flip = (lambda b: bbox_flip(b, meta['ori_shape'], meta['flip_direction'])) if meta.get('flip') \
                else (lambda b: b)
            boxes.append(flip(p.bboxes))
            if with_noh:
                noh_boxes.append(flip(p.noh_bboxes))
        boxes = torch.cat(boxes)
        if boxes.numel() == 0:
            return data_samples[0]
        scores = torch.cat([p.scores for p in preds])
        labels = torch.cat([p.labels for p in preds])
        noh_scores = torch.cat([p.noh_scores for p in preds]) if with_noh else None
        noh_boxes = torch.cat(noh_boxes) if with_noh else None
        try:
            keep, final = run_crowd_nms(boxes, scores, labels, self.tta_cfg.get('nms'), noh_scores, noh_boxes,
                                        max_num=self.tta_cfg.get('max_per_img', -1))
        except ValueError as e:
            if not with_noh:
                raise ValueError(f'NOHTTAModel: {e}; the detector predicts no noh_scores/noh_bboxes '
                                 '(use a NOHRoIHead detector or a tta_cfg.nms without the NOH)') from e
            raise
        results = InstanceData(bboxes=boxes[keep], scores=final, labels=labels[keep])
        if with_noh:
            results.noh_scores, results.noh_bboxes = noh_scores[keep], noh_boxes[keep]
        out = data_samples[0]
        out.pred_instances = results
        return out
