"""RoI head carrying the NOH outputs (NOH-NMS) through training and inference."""
from typing import List, Tuple

from torch import Tensor

from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.models.utils import empty_instances, unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi
from mmdet.utils import ConfigType, InstanceList

from mm_ext._registry import register


@register(MODELS)
class NOHRoIHead(StandardRoIHead):
    """:class:`StandardRoIHead` for a :class:`NOHBBoxHead` (box branch only).

    `NOH-NMS <https://arxiv.org/abs/2007.13376>`_. Overrides the template steps that
    must carry the two extra outputs of the bbox head: ``_bbox_forward`` (adds
    ``noh_score`` (R,) and ``noh_pred`` (R, 4)), ``loss``/``bbox_loss`` (pass the
    GTs for the nearby targets) and ``predict_bbox`` (pass the NOH outputs to the
    NMS). Assignment and sampling are the parent's (``train_cfg.assigner`` /
    ``train_cfg.sampler``). Mask heads are not supported.
    """

    def init_mask_head(self, mask_roi_extractor: ConfigType, mask_head: ConfigType) -> None:
        raise ValueError('NOHRoIHead supports boxes only: remove mask_head/mask_roi_extractor '
                         'from the roi_head config')

    def _bbox_forward(self, x: Tuple[Tensor], rois: Tensor) -> dict:
        """Box and NOH outputs for ``rois`` (R, 5) = (batch index, x1, y1, x2, y2).

        Returns:
            dict[str, Tensor]: ``cls_score`` (R, K + 1), ``bbox_pred`` (R, 4K),
            ``noh_score`` (R,) logits, ``noh_pred`` (R, 4), ``bbox_feats``.
        """
        bbox_feats = self.bbox_roi_extractor(x[:self.bbox_roi_extractor.num_inputs], rois)
        if self.with_shared_head:
            bbox_feats = self.shared_head(bbox_feats)
        cls_score, bbox_pred, noh_score, noh_pred = self.bbox_head(bbox_feats)
        return dict(cls_score=cls_score, bbox_pred=bbox_pred, noh_score=noh_score,
                    noh_pred=noh_pred, bbox_feats=bbox_feats)

    def loss(self, x: Tuple[Tensor], rpn_results_list: InstanceList, batch_data_samples: SampleList) -> dict:
        """Assign, sample and compute the box + NOH losses (see the parent)."""
        assert len(rpn_results_list) == len(batch_data_samples)
        batch_gt_instances, batch_gt_instances_ignore, _ = unpack_gt_instances(batch_data_samples)
        sampling_results = []
        for i in range(len(batch_data_samples)):
            rpn_results = rpn_results_list[i]
            rpn_results.priors = rpn_results.pop('bboxes')
            assign_result = self.bbox_assigner.assign(rpn_results, batch_gt_instances[i],
                                                      batch_gt_instances_ignore[i])
            sampling_results.append(self.bbox_sampler.sample(
                assign_result, rpn_results, batch_gt_instances[i],
                feats=[lvl_feat[i][None] for lvl_feat in x]))
        return dict(self.bbox_loss(x, sampling_results, batch_gt_instances)['loss_bbox'])

    def bbox_loss(self, x: Tuple[Tensor], sampling_results: List[SamplingResult],
                  batch_gt_instances: InstanceList = None) -> dict:
        """Forward the sampled RoIs and compute the losses.

        Returns:
            dict: the outputs of :meth:`_bbox_forward` plus ``loss_bbox`` (dict).
        """
        if batch_gt_instances is None:
            raise ValueError('NOHRoIHead.bbox_loss needs batch_gt_instances for the NOH targets')
        rois = bbox2roi([res.priors for res in sampling_results])
        results = self._bbox_forward(x, rois)
        out = self.bbox_head.loss_and_target(
            cls_score=results['cls_score'], bbox_pred=results['bbox_pred'], rois=rois,
            sampling_results=sampling_results, rcnn_train_cfg=self.train_cfg,
            noh_score=results['noh_score'], noh_pred=results['noh_pred'],
            batch_gt_instances=batch_gt_instances)
        results.update(loss_bbox=out['loss_bbox'])
        return results

    def predict_bbox(self, x: Tuple[Tensor], batch_img_metas: List[dict], rpn_results_list: InstanceList,
                     rcnn_test_cfg: ConfigType, rescale: bool = False) -> InstanceList:
        """Detections per image after the NMS selected in ``rcnn_test_cfg.nms``.

        Returns:
            list[InstanceData]: ``bboxes`` (K, 4), ``scores`` (K,), ``labels`` (K,),
            ``noh_scores`` (K,), ``noh_bboxes`` (K, 4) per image.
        """
        proposals = [res.bboxes for res in rpn_results_list]
        rois = bbox2roi(proposals)
        if rois.shape[0] == 0:
            return empty_instances(batch_img_metas, rois.device, task_type='bbox',
                                   box_type=self.bbox_head.predict_box_type,
                                   num_classes=self.bbox_head.num_classes,
                                   score_per_cls=rcnn_test_cfg is None)
        results = self._bbox_forward(x, rois)
        num = tuple(len(p) for p in proposals)
        return self.bbox_head.predict_by_feat(
            rois=rois.split(num, 0),
            cls_scores=results['cls_score'].split(num, 0),
            bbox_preds=results['bbox_pred'].split(num, 0),
            batch_img_metas=batch_img_metas,
            rcnn_test_cfg=rcnn_test_cfg,
            rescale=rescale,
            noh_scores=results['noh_score'].split(num, 0),
            noh_preds=results['noh_pred'].split(num, 0))
