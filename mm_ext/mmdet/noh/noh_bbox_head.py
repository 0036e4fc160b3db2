"""Box head with the Nearby Objects Hallucinator branch (NOH-NMS)."""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures.bbox import get_box_tensor, scale_boxes
from mmdet.utils import ConfigType, InstanceList, OptMultiConfig

from mm_ext._registry import register
from .crowd_nms import run_crowd_nms


@register(MODELS)
class NOHBBoxHead(Shared2FCBBoxHead):
    r"""``Shared2FCBBoxHead`` plus the Nearby Objects Hallucinator (NOH).

    `NOH-NMS: Improving Pedestrian Detection by Nearby Objects Hallucination
    <https://arxiv.org/abs/2007.13376>`_, spec ``noh-nms.md`` sections 2-4.

    .. code-block:: none

                          /-> 2 x FC (shared_fcs) -> fc_cls, fc_reg   (detection)
        RoI feature (7x7) |
                          \-> 2 x FC (noh_fcs)    -> fc_noh_score (1, sigmoid)
                                                  -> fc_noh_reg (4, class-agnostic deltas
                                                     of the nearby object w.r.t. the RoI)

    Training: the NOH score regresses the IoU of the RoI with its second-best GT
    (smooth-L1, ``beta`` 0.02, over the foreground RoIs, divided by their number);
    the NOH deltas regress that GT (``bbox_coder`` encoding, smooth-L1 ``beta`` 1) on
    foreground RoIs whose nearby IoU exceeds ``noh_bbox_iou_thr``, divided by the
    number of sampled RoIs (``noh_uniform_divisor``). Inference decodes the
    detections and the hallucinated boxes (w.r.t. the RoIs) with ``bbox_coder``,
    which clips both to the image unless ``bbox_coder.clip_border=False``
    (official: no clipping), exactly as mmdet's heads decode, then runs
    ``test_cfg.nms`` on all classes in one call: mmdet's own types and keys
    (``nms``, ``soft_nms`` with ``method``, ``class_agnostic``, ``split_thr``) or the
    crowd family (``crowd_nms`` with ``method`` = ``'noh'`` / ``'greedy'`` /
    ``'adaptive'`` / ``'soft_linear'`` / ``'soft_gaussian'``, or ``noh_nms``); see
    :mod:`mm_ext.mmdet.noh.crowd_nms` for the keys. Predictions carry
    ``noh_scores`` (K,) and ``noh_bboxes`` (K, 4) besides bboxes/scores/labels;
    with ``rcnn_test_cfg=None`` the raw per-RoI outputs are returned (for a caller
    that merges them), and :class:`NOHTTAModel` keeps the NOH outputs through
    test-time augmentation.

    Args:
        fc_out_channels (int): width of the detection FCs. Defaults to 1024.
        num_noh_fcs (int): FC layers of the NOH branch. Defaults to 2.
        noh_fc_out_channels (int): width of the NOH FCs. Defaults to 1024.
        noh_assigner (dict): config of the nearby-GT assigner (``TASK_UTILS``).
            Defaults to ``dict(type='NOHNearbyAssigner')``.
        noh_bbox_iou_thr (float): nearby IoU above which the NOH box is trained.
            Defaults to 0.4 (CrowdHuman config; official code default 0.3).
        noh_uniform_divisor (bool): divide the NOH box loss by the number of sampled
            RoIs (True) or by the number of selected RoIs times ``noh_reg_loss_coeff``.
            Defaults to True.
        noh_reg_loss_coeff (float): NOH box loss factor when not uniform. Defaults to 0.1.
        loss_noh_score (dict): NOH score loss (on the sigmoid). Defaults to smooth-L1,
            beta 0.02.
        loss_noh_bbox (dict): NOH box loss. Defaults to smooth-L1, beta 1.0.
        init_cfg (dict or list[dict], optional): initialisation; None gives the
            parent's plus Xavier on ``noh_fcs``, N(0, 0.01) on ``fc_noh_score`` and
            N(0, 0.001) on ``fc_noh_reg``. Defaults to None.
        **kwargs: arguments of :class:`Shared2FCBBoxHead`.
    """

    def __init__(self,
                 fc_out_channels: int = 1024,
                 num_noh_fcs: int = 2,
                 noh_fc_out_channels: int = 1024,
                 noh_assigner: ConfigType = dict(type='NOHNearbyAssigner'),
                 noh_bbox_iou_thr: float = 0.4,
                 noh_uniform_divisor: bool = True,
                 noh_reg_loss_coeff: float = 0.1,
                 loss_noh_score: ConfigType = dict(type='SmoothL1Loss', beta=0.02, loss_weight=1.0),
                 loss_noh_bbox: ConfigType = dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0),
                 init_cfg: OptMultiConfig = None,
                 **kwargs) -> None:
        super().__init__(fc_out_channels=fc_out_channels, init_cfg=init_cfg, **kwargs)
        if num_noh_fcs < 1:
            raise ValueError(f'num_noh_fcs must be >= 1 (the NOH has its own FC head), got {num_noh_fcs}')
        self.noh_bbox_iou_thr = noh_bbox_iou_thr
        self.noh_uniform_divisor = noh_uniform_divisor
        self.noh_reg_loss_coeff = noh_reg_loss_coeff
        self.noh_assigner = TASK_UTILS.build(noh_assigner)
        self.loss_noh_score = MODELS.build(loss_noh_score)
        self.loss_noh_bbox = MODELS.build(loss_noh_bbox)
        in_dim = self.in_channels * (1 if self.with_avg_pool else self.roi_feat_area)
        dims = [in_dim] + [noh_fc_out_channels] * num_noh_fcs
        self.noh_fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.fc_noh_score = nn.Linear(noh_fc_out_channels, 1)
        self.fc_noh_reg = nn.Linear(noh_fc_out_channels, self.bbox_coder.encode_size)
        if init_cfg is None:
            self.init_cfg += [
                dict(type='Xavier', distribution='uniform', override=dict(name='noh_fcs')),
                dict(type='Normal', std=0.01, override=dict(name='fc_noh_score')),
                dict(type='Normal', std=0.001, override=dict(name='fc_noh_reg')),
            ]

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Detection and NOH outputs of R RoI features.

        Args:
            x (Tensor): (R, C, S, S) RoI features (S = ``roi_feat_size``).

        Returns:
            tuple[Tensor, Tensor, Tensor, Tensor]:

            - cls_score (Tensor): (R, num_classes + 1) logits.
            - bbox_pred (Tensor): (R, 4 * num_classes) deltas (4 if class-agnostic).
            - noh_score (Tensor): (R,) NOH logits (sigmoid gives p).
            - noh_pred (Tensor): (R, 4) deltas of the nearby object w.r.t. the RoI.
        """
        cls_score, bbox_pred = super().forward(x)
        y = self.avg_pool(x) if self.with_avg_pool else x
        y = y.flatten(1)
        for fc in self.noh_fcs:
            y = F.relu(fc(y))
        return cls_score, bbox_pred, self.fc_noh_score(y).squeeze(1), self.fc_noh_reg(y)

    def get_noh_targets(self, sampling_results: List[SamplingResult],
                        batch_gt_instances: InstanceList) -> Tuple[Tensor, Tensor]:
        """Nearby IoU and encoded nearby box of every sampled RoI (0 for negatives).

        Args:
            sampling_results (list[SamplingResult]): per image, positives first.
            batch_gt_instances (list[InstanceData]): per image, ``bboxes`` (G, 4) of
                the non-ignored GTs.

        Returns:
            tuple[Tensor, Tensor]: ``nearby_iou`` (R,) and ``nearby_deltas`` (R, 4), in
            the RoI order of :func:`mmdet.structures.bbox.bbox2roi` over
            ``res.priors`` (R = all sampled RoIs of the batch).
        """
        ious, deltas = [], []
        for res, gt in zip(sampling_results, batch_gt_instances):
            pos = get_box_tensor(res.pos_priors)
            n_neg = res.neg_priors.shape[0]
            iou, nearby = self.noh_assigner.assign(pos, get_box_tensor(gt.bboxes))
            enc = self.bbox_coder.encode(pos, nearby) if pos.shape[0] else pos.new_zeros(0, 4)
            ious.append(torch.cat([iou, iou.new_zeros(n_neg)]))
            deltas.append(torch.cat([enc, enc.new_zeros(n_neg, enc.shape[1])]))
        return torch.cat(ious), torch.cat(deltas)

    def noh_loss(self, noh_score: Tensor, noh_pred: Tensor, labels: Tensor, nearby_iou: Tensor,
                 nearby_deltas: Tensor) -> dict:
        """The two NOH losses (spec section 3.2).

        Args:
            noh_score (Tensor): (R,) NOH logits.
            noh_pred (Tensor): (R, 4) NOH deltas.
            labels (Tensor): (R,) RoI labels (``num_classes`` = background).
            nearby_iou (Tensor): (R,) nearby IoU targets.
            nearby_deltas (Tensor): (R, 4) encoded nearby boxes.

        Returns:
            dict[str, Tensor]: ``loss_noh_score`` and ``loss_noh_bbox``.
        """
        fg = (labels >= 0) & (labels < self.num_classes)
        num_fg = max(int(fg.sum()), 1)
        loss_score = self.loss_noh_score(noh_score[fg].sigmoid(), nearby_iou[fg], avg_factor=num_fg)
        sel = fg & (nearby_iou > self.noh_bbox_iou_thr)
        if self.noh_uniform_divisor:
            loss_box = self.loss_noh_bbox(noh_pred[sel], nearby_deltas[sel], avg_factor=max(labels.numel(), 1))
        else:
            loss_box = self.noh_reg_loss_coeff * self.loss_noh_bbox(
                noh_pred[sel], nearby_deltas[sel], avg_factor=max(int(sel.sum()), 1))
        return dict(loss_noh_score=loss_score, loss_noh_bbox=loss_box)

    def loss_and_target(self,
                        cls_score: Tensor,
                        bbox_pred: Tensor,
                        rois: Tensor,
                        sampling_results: List[SamplingResult],
                        rcnn_train_cfg: ConfigDict,
                        concat: bool = True,
                        reduction_override: Optional[str] = None,
                        noh_score: Optional[Tensor] = None,
                        noh_pred: Optional[Tensor] = None,
                        batch_gt_instances: Optional[InstanceList] = None) -> dict:
        """Parent losses plus the NOH losses when ``noh_score``/``noh_pred`` are given.

        Args:
            noh_score (Tensor, optional): (R,) NOH logits.
            noh_pred (Tensor, optional): (R, 4) NOH deltas.
            batch_gt_instances (list[InstanceData], optional): per-image GTs (needed
                with the NOH outputs).
            Others: as :meth:`BBoxHead.loss_and_target`.

        Returns:
            dict: ``loss_bbox`` (dict of losses incl. ``loss_noh_score`` and
            ``loss_noh_bbox``) and ``bbox_targets``.
        """
        out = super().loss_and_target(cls_score, bbox_pred, rois, sampling_results, rcnn_train_cfg,
                                      concat=concat, reduction_override=reduction_override)
        if noh_score is not None:
            if batch_gt_instances is None:
                raise ValueError('batch_gt_instances is required with the NOH outputs '
                                 '(the nearby targets come from the GT boxes)')
            labels = out['bbox_targets'][0]
            nearby_iou, nearby_deltas = self.get_noh_targets(sampling_results, batch_gt_instances)
            out['loss_bbox'].update(self.noh_loss(noh_score, noh_pred, labels, nearby_iou, nearby_deltas))
        return out

    def predict_by_feat(self,
                        rois: Tuple[Tensor],
                        cls_scores: Tuple[Tensor],
                        bbox_preds: Tuple[Tensor],
                        batch_img_metas: List[dict],
                        rcnn_test_cfg: Optional[ConfigDict] = None,
                        rescale: bool = False,
                        noh_scores: Optional[Tuple[Tensor]] = None,
                        noh_preds: Optional[Tuple[Tensor]] = None) -> InstanceList:
        """Per-image post-processing with the selected crowd NMS.

        Args:
            noh_scores (tuple[Tensor], optional): per image (R_i,) NOH logits.
            noh_preds (tuple[Tensor], optional): per image (R_i, 4) NOH deltas.
            Others: as :meth:`BBoxHead.predict_by_feat`.

        Returns:
            list[InstanceData]: per image ``bboxes`` (K, 4), ``scores`` (K,),
            ``labels`` (K,) and, with the NOH outputs, ``noh_scores`` (K,) and
            ``noh_bboxes`` (K, 4).
        """
        n = len(batch_img_metas)
        noh_scores = noh_scores if noh_scores is not None else (None,) * n
        noh_preds = noh_preds if noh_preds is not None else (None,) * n
        return [self._predict_noh_single(rois[i], cls_scores[i], bbox_preds[i], noh_scores[i], noh_preds[i],
                                         batch_img_metas[i], rescale, rcnn_test_cfg) for i in range(n)]

    def _predict_noh_single(self, roi: Tensor, cls_score: Tensor, bbox_pred: Tensor,
                            noh_score: Optional[Tensor], noh_pred: Optional[Tensor], img_meta: dict,
                            rescale: bool, rcnn_test_cfg: Optional[ConfigDict]) -> InstanceData:
        """One image: decode (clipping as ``bbox_coder.clip_border`` says), rescale, NMS."""
        results = InstanceData()
        with_noh = noh_score is not None
        if rcnn_test_cfg is not None and 'clip_border' in rcnn_test_cfg:
            raise ValueError('rcnn test_cfg.clip_border is not read: set bbox_head.bbox_coder.clip_border '
                             '(False = official NOH-NMS, boxes not clipped) so that every NMS variant and '
                             'mmdet heads decode identically')
        if roi.shape[0] == 0 and rcnn_test_cfg is not None:
            results.bboxes = roi.new_zeros(0, 4)
            results.scores = roi.new_zeros(0)
            results.labels = roi.new_zeros(0, dtype=torch.long)
            if with_noh:
                results.noh_scores = roi.new_zeros(0)
                results.noh_bboxes = roi.new_zeros(0, 4)
            return results
        scores = F.softmax(cls_score, dim=-1)
        img_shape = img_meta['img_shape']  # the coder clips to it unless clip_border=False
        num_rois = roi.size(0)
        reg_classes = 1 if self.reg_class_agnostic else self.num_classes
        bboxes = self.bbox_coder.decode(roi[:, 1:].repeat_interleave(reg_classes, dim=0),
                                        bbox_pred.view(-1, self.bbox_coder.encode_size), max_shape=img_shape)
        noh_bboxes = self.bbox_coder.decode(roi[:, 1:], noh_pred, max_shape=img_shape) if with_noh else None
        if rescale and num_rois > 0:
            inv = [1 / s for s in img_meta['scale_factor']]
            bboxes = scale_boxes(bboxes, inv)
            if with_noh:
                noh_bboxes = scale_boxes(noh_bboxes, inv)
        bboxes = get_box_tensor(bboxes).view(num_rois, -1)
        if with_noh:
            noh_bboxes = get_box_tensor(noh_bboxes)
            noh_p = noh_score.sigmoid()
        if rcnn_test_cfg is None:  # raw outputs for a caller that merges them itself
            results.bboxes, results.scores = bboxes, scores
            if with_noh:
                results.noh_scores, results.noh_bboxes = noh_p, noh_bboxes
            return results

        num_classes = scores.size(1) - 1
        cls_s = scores[:, :-1]
        boxes = bboxes.view(num_rois, -1, 4).expand(num_rois, num_classes, 4)
        valid = (cls_s > rcnn_test_cfg.score_thr).nonzero()
        r, c = valid[:, 0], valid[:, 1]
        boxes, labels = boxes[r, c], c
        keep, final = run_crowd_nms(boxes, cls_s[r, c], labels, rcnn_test_cfg.get('nms'),
                                    noh_p[r] if with_noh else None, noh_bboxes[r] if with_noh else None,
                                    max_num=rcnn_test_cfg.get('max_per_img', -1))
        results.bboxes = boxes[keep]
        results.scores = final
        results.labels = labels[keep]
        if with_noh:
            results.noh_scores = noh_p[r][keep]
            results.noh_bboxes = noh_bboxes[r][keep]
        return results
