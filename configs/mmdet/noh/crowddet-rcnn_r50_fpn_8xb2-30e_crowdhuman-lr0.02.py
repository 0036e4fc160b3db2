# Comparison anchor (spec decisions 6 and 10): mmdet 3.3's CrowdDet (EMD + Set-NMS, no refinement)
# with lr 0.02 (the shipped 0.002 under-trains: open-mmlab/mmdetection issue #11061 reports
# mAP 0.8991 / mMR 0.4228 / JI 0.8009 at 0.02), evaluated with the NOH metric (adds Recall).
# Its test setting is score 0.01 / 500 per image: compare it with the *_crowddet-eval NOH and
# Greedy configs, which evaluate at the same values. Needs torchvision weights pre-placed.
_base_ = 'mmdet::crowddet/crowddet-rcnn_r50_fpn_8xb2-30e_crowdhuman.py'
custom_imports = dict(imports=['mm_ext.mmdet'], allow_failed_imports=False)
optim_wrapper = dict(optimizer=dict(lr=0.02))
val_evaluator = dict(type='CrowdHumanRecallMetric', metric=['AP', 'MR', 'JI', 'Recall'])
test_evaluator = val_evaluator
