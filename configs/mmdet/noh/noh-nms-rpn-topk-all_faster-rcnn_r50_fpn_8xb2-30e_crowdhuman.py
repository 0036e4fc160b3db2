# NOH-NMS with the official RPN (spec decision 8): pre-NMS top-k over all FPN levels together
# (12000 train / 6000 test), then per-level NMS 0.7, 2000 / 1000 proposals, min size 2.
_base_ = './noh-nms_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py'
model = dict(
    rpn_head=dict(type='NOHRPNHead'),
    train_cfg=dict(rpn_proposal=dict(nms_pre=12000, max_per_img=2000, min_bbox_size=2)),
    test_cfg=dict(rpn=dict(nms_pre=6000, max_per_img=1000, min_bbox_size=2)))
