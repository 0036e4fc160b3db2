# NOH-NMS trained and evaluated on CrowdHuman visible-body boxes (vbox) instead of full bodies.
_base_ = './noh-nms_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py'
_select = dict(type='NOHSelectBodyBox', box_key='vbox')  # before LoadAnnotations
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'), _select,
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1400, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]))
val_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'), _select,
    dict(type='Resize', scale=(1400, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]))
test_dataloader = val_dataloader
val_evaluator = dict(gt_box_key='vbox')
test_evaluator = val_evaluator
