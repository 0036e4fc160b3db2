# NOH-NMS evaluated at mmdet CrowdDet's test setting (score 0.01, 500 per image) for the
# comparison with crowddet-rcnn_r50_fpn_8xb2-30e_crowdhuman-lr0.02.py (spec decision 6).
_base_ = './noh-nms_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py'
model = dict(test_cfg=dict(rcnn=dict(score_thr=0.01, max_per_img=500)))
