"""Key mapping of the official NOH-NMS (detectron2) checkpoints to the mm-ext NOH detector.

The authors' released weights (Faster R-CNN R50-FPN with the overlap/NOH head,
detectron2 v0.1 layout) map one to one onto
``configs/mmdet/noh/noh-nms_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py`` (and the
Greedy-NMS baseline, which has no ``roi_heads.overlap_*`` keys):

=================================================  ===========================================
detectron2                                          mmdet (this project)
=================================================  ===========================================
backbone.bottom_up.stem.conv1(.norm)               backbone.conv1 / backbone.bn1
backbone.bottom_up.res{2..5}.{b}.conv{k}(.norm)    backbone.layer{1..4}.{b}.conv{k} / .bn{k}
backbone.bottom_up.res{s}.{b}.shortcut(.norm)      backbone.layer{s-1}.{b}.downsample.0 / .1
backbone.fpn_lateral{2..5}(.norm)                  neck.lateral_convs.{0..3}.conv / .bn
backbone.fpn_output{2..5}(.norm)                   neck.fpn_convs.{0..3}.conv / .bn
proposal_generator.rpn_head.conv                   rpn_head.rpn_conv
proposal_generator.rpn_head.objectness_logits      rpn_head.rpn_cls
proposal_generator.rpn_head.anchor_deltas          rpn_head.rpn_reg
roi_heads.box_head.fc{1,2}                         roi_head.bbox_head.shared_fcs.{0,1}
roi_heads.box_predictor.cls_score / bbox_pred      roi_head.bbox_head.fc_cls / fc_reg
roi_heads.overlap_head.fc{1,2}                     roi_head.bbox_head.noh_fcs.{0,1}
roi_heads.overlap_predictor.overlap_prob / _pred   roi_head.bbox_head.fc_noh_score / fc_noh_reg
=================================================  ===========================================

No tensor is changed: both use caffe-style ResNet (stride in the 1 x 1 conv), BGR
input minus the same means, anchors ordered by aspect ratio (h / w) at offset 0,
the background class last in ``cls_score``, class-specific (dx, dy, dw, dh)
deltas with weights (10, 10, 5, 5) = stds (0.1, 0.1, 0.2, 0.2), the same RoI
level rule (canonical 224 at P4 = finest scale 56 at P2) and aligned RoIAlign.
Frozen BN layers get a zero ``num_batches_tracked``. ``pixel_mean`` /
``pixel_std`` buffers are dropped (the data preprocessor holds them).
"""
import re
from typing import Dict, List, Tuple

import torch
from torch import Tensor

__all__ = ['convert_detectron2_noh']

_RULES = [
    (r'backbone\.bottom_up\.stem\.conv1\.norm\.(.+)', lambda m: f'backbone.bn1.{m[1]}'),
    (r'backbone\.bottom_up\.stem\.conv1\.(weight|bias)', lambda m: f'backbone.conv1.{m[1]}'),
    (r'backbone\.bottom_up\.res([2-5])\.(\d+)\.conv([123])\.norm\.(.+)',
     lambda m: f'backbone.layer{int(m[1]) - 1}.{m[2]}.bn{m[3]}.{m[4]}'),
    (r'backbone\.bottom_up\.res([2-5])\.(\d+)\.conv([123])\.(weight|bias)',
     lambda m: f'backbone.layer{int(m[1]) - 1}.{m[2]}.conv{m[3]}.{m[4]}'),
    (r'backbone\.bottom_up\.res([2-5])\.(\d+)\.shortcut\.norm\.(.+)',
     lambda m: f'backbone.layer{int(m[1]) - 1}.{m[2]}.downsample.1.{m[3]}'),
    (r'backbone\.bottom_up\.res([2-5])\.(\d+)\.shortcut\.(weight|bias)',
     lambda m: f'backbone.layer{int(m[1]) - 1}.{m[2]}.downsample.0.{m[3]}'),
    (r'backbone\.fpn_lateral([2-5])\.norm\.(.+)', lambda m: f'neck.lateral_convs.{int(m[1]) - 2}.bn.{m[2]}'),
    (r'backbone\.fpn_lateral([2-5])\.(weight|bias)', lambda m: f'neck.lateral_convs.{int(m[1]) - 2}.conv.{m[2]}'),
    (r'backbone\.fpn_output([2-5])\.norm\.(.+)', lambda m: f'neck.fpn_convs.{int(m[1]) - 2}.bn.{m[2]}'),
    (r'backbone\.fpn_output([2-5])\.(weight|bias)', lambda m: f'neck.fpn_convs.{int(m[1]) - 2}.conv.{m[2]}'),
    (r'proposal_generator\.rpn_head\.conv\.(weight|bias)', lambda m: f'rpn_head.rpn_conv.{m[1]}'),
    (r'proposal_generator\.rpn_head\.objectness_logits\.(weight|bias)', lambda m: f'rpn_head.rpn_cls.{m[1]}'),
    (r'proposal_generator\.rpn_head\.anchor_deltas\.(weight|bias)', lambda m: f'rpn_head.rpn_reg.{m[1]}'),
    (r'roi_heads\.box_head\.fc([12])\.(weight|bias)',
     lambda m: f'roi_head.bbox_head.shared_fcs.{int(m[1]) - 1}.{m[2]}'),
    (r'roi_heads\.box_predictor\.cls_score\.(weight|bias)', lambda m: f'roi_head.bbox_head.fc_cls.{m[1]}'),
    (r'roi_heads\.box_predictor\.bbox_pred\.(weight|bias)', lambda m: f'roi_head.bbox_head.fc_reg.{m[1]}'),
    (r'roi_heads\.overlap_head\.fc([12])\.(weight|bias)',
     lambda m: f'roi_head.bbox_head.noh_fcs.{int(m[1]) - 1}.{m[2]}'),
    (r'roi_heads\.overlap_predictor\.overlap_prob\.(weight|bias)',
     lambda m: f'roi_head.bbox_head.fc_noh_score.{m[1]}'),
    (r'roi_heads\.overlap_predictor\.overlap_pred\.(weight|bias)',
     lambda m: f'roi_head.bbox_head.fc_noh_reg.{m[1]}'),
]
_DROPPED = ('pixel_mean', 'pixel_std')


def convert_detectron2_noh(state_dict: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], List[str]]:
    """Rename a detectron2 NOH-NMS state dict to the mm-ext NOH detector's keys.

    Args:
        state_dict (dict[str, Tensor]): the ``model`` entry of an official
            checkpoint (a ``module.`` prefix from DataParallel is stripped).

    Returns:
        tuple[dict[str, Tensor], list[str]]: the converted state dict and the
        dropped keys (``pixel_mean`` / ``pixel_std``).

    Raises:
        ValueError: listing every key that has no counterpart (e.g. a checkpoint of
        another architecture), so nothing is silently lost.
    """
    rules = [(re.compile(p + r'$'), f) for p, f in _RULES]
    out, dropped, unknown = {}, [], []
    for key, value in state_dict.items():
        k = key[len('module.'):] if key.startswith('module.') else key
        if k in _DROPPED:
            dropped.append(key)
            continue
        for pattern, fn in rules:
            m = pattern.match(k)
            if m:
                new = fn(m)
                if new in out:
                    raise ValueError(f'two checkpoint keys map to {new!r} (second: {key!r})')
                out[new] = torch.as_tensor(value)
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f'{len(unknown)} keys of the checkpoint are not part of the NOH-NMS detectron2 '
                         f'layout (first: {unknown[:5]}); is it a Faster R-CNN R50-FPN (+ overlap head) '
                         'checkpoint of the official repository?')
    if not out:
        raise ValueError('no NOH-NMS detectron2 keys found in the checkpoint')
    for key in list(out):  # detectron2 FrozenBatchNorm2d / BatchNorm2d: mmdet's BN also tracks batches
        if key.endswith('.running_var'):
            out.setdefault(key[:-len('running_var')] + 'num_batches_tracked', torch.tensor(0, dtype=torch.long))
    return out, dropped
