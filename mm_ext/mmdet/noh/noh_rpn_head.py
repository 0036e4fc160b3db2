"""RPN head whose pre-NMS top-k runs over all FPN levels together (official NOH-NMS)."""
from typing import List

import torch
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.models.dense_heads import RPNHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import cat_boxes

from mm_ext._registry import register


@register(MODELS)
class NOHRPNHead(RPNHead):
    """:class:`RPNHead` with the proposal top-k taken over all levels at once.

    `NOH-NMS <https://arxiv.org/abs/2007.13376>`_ (spec ``noh-nms.md`` section 5 and
    decision 8): the official RPN keeps the ``nms_pre`` highest-scoring anchors of
    the whole image (12000 in training, 6000 at test) before the per-level NMS,
    whereas mmdet's :class:`RPNHead` keeps ``nms_pre`` *per level*. Here ``nms_pre``
    of ``train_cfg.rpn_proposal`` / ``test_cfg.rpn`` is the across-level count; the
    rest (decoding, ``min_bbox_size``, per-level NMS, ``max_per_img``) is the
    parent's ``_bbox_post_process``. Takes the arguments of :class:`RPNHead`.
    """

    def _predict_by_feat_single(self, cls_score_list: List[Tensor], bbox_pred_list: List[Tensor],
                                score_factor_list: List[Tensor], mlvl_priors: List[Tensor], img_meta: dict,
                                cfg: ConfigDict, rescale: bool = False, with_nms: bool = True) -> InstanceData:
        """Proposals of one image (see :meth:`RPNHead._predict_by_feat_single`).

        Args:
            cls_score_list (list[Tensor]): per level (A, H, W) objectness logits
                (A anchors per location; 2A with softmax).
            bbox_pred_list (list[Tensor]): per level (4A, H, W) deltas.
            mlvl_priors (list[Tensor]): per level (H * W * A, 4) anchors.
            Others: as the parent.

        Returns:
            InstanceData: ``bboxes`` (K, 4), ``scores`` (K,), ``labels`` (K,) zeros.
        """
        cfg = self.test_cfg if cfg is None else cfg
        nms_pre = cfg.get('nms_pre', -1)
        reg_dim = self.bbox_coder.encode_size
        scores, deltas, level_ids = [], [], []
        for level, (cls_score, bbox_pred) in enumerate(zip(cls_score_list, bbox_pred_list)):
            cls_score = cls_score.permute(1, 2, 0).reshape(-1, self.cls_out_channels)
            s = cls_score.sigmoid() if self.use_sigmoid_cls else cls_score.softmax(-1)[:, :-1]
            scores.append(s.reshape(-1))
            deltas.append(bbox_pred.permute(1, 2, 0).reshape(-1, reg_dim))
            level_ids.append(torch.full((s.shape[0],), level, dtype=torch.long, device=s.device))
        scores, deltas, level_ids = torch.cat(scores), torch.cat(deltas), torch.cat(level_ids)
        priors = cat_boxes(mlvl_priors)
        if 0 < nms_pre < scores.shape[0]:
            scores, top = scores.sort(descending=True)
            scores, top = scores[:nms_pre], top[:nms_pre]
            deltas, level_ids, priors = deltas[top], level_ids[top], priors[top]
        results = InstanceData()
        results.bboxes = self.bbox_coder.decode(priors, deltas, max_shape=img_meta['img_shape'])
        results.scores = scores
        results.level_ids = level_ids
        return self._bbox_post_process(results=results, cfg=cfg, rescale=rescale, with_nms=with_nms,
                                       img_meta=img_meta)
