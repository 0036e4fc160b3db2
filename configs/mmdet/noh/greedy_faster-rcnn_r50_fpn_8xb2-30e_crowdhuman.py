# Greedy-NMS baseline of NOH-NMS (arXiv 2007.13376): the same Faster R-CNN R50-FPN and schedule
# without the hallucinator branch, greedy NMS at IoU 0.5.
# Paper: AP 85.1 / Recall 87.8 / MR^-2 44.7 (official weights 85.0 / 87.5 / 44.5).
_base_ = './noh-nms_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py'
model = dict(
    roi_head=dict(
        type='StandardRoIHead',
        bbox_head=dict(
            _delete_=True,
            type='Shared2FCBBoxHead',
            in_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=1,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0], target_stds=[0.1, 0.1, 0.2, 0.2],
                clip_border=False),  # decoded exactly like the NOH config: unclipped (official)
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))),
    # mmdet's own head and multiclass_nms (mmcv greedy NMS); clipping is the bbox_coder's
    # clip_border above, as in the NOH head, so both configs see identically decoded boxes
    test_cfg=dict(rcnn=dict(_delete_=True, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                            max_per_img=200)))
