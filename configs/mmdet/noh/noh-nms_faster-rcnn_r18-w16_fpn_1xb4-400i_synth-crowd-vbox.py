# The small synth-crowd NOH-NMS model trained and evaluated on visible bodies (vbox).
_base_ = './noh-nms_faster-rcnn_r18-w16_fpn_1xb4-400i_synth-crowd.py'
_select = dict(type='NOHSelectBodyBox', box_key='vbox')  # before LoadAnnotations
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'), _select,
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(256, 160), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]))
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'), _select,
    dict(type='Resize', scale=(256, 160), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]))
test_evaluator = dict(gt_box_key='vbox')
