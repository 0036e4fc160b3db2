# NOH-NMS on the generated synth-crowd set (python tools/make_data.py synth-crowd): the paper's
# model shrunk to train on 2 CPU cores in a few minutes. Random init (no pretrained weights):
# ResNet-18 at quarter width (16 base channels), 64-channel FPN, 256-wide FC heads, 64 RoIs per
# image, RoIAlign with 2 x 2 samples per bin (mmcv's CPU backward is slow with adaptive sampling).
# Greedy vs NOH on the same model (same decoded, unclipped boxes): --cfg-options model.test_cfg.rcnn.nms.type=nms
_base_ = './noh-nms_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py'

max_iters = 400
model = dict(
    data_preprocessor=dict(std=[57.375, 57.12, 58.395], pad_size_divisor=32),
    backbone=dict(
        depth=18, base_channels=16, frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False, style='pytorch', init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(roi_layer=dict(sampling_ratio=2), out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, noh_fc_out_channels=256)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=600, max_per_img=300),
        rcnn=dict(max_per_img=100)))

data_root = 'data/synth-crowd/'
img_scale = (256, 160)  # synth-crowd's size; other images are resized into it
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),  # iteration-based: no restart pauses
    batch_sampler=None,
    dataset=dict(data_root=data_root, filter_cfg=dict(filter_empty_gt=True, min_size=2),
                 pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_evaluator = dict(ann_file=data_root + 'annotation_val.odgt', metric=['AP', 'MR', 'Recall'])
# no validation during the short training run; evaluate with tools/test.py
val_dataloader = None
val_evaluator = None
val_cfg = None

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=[int(max_iters * 0.8)],
         gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=0.02), clip_grad=dict(max_norm=10, norm_type=2))
auto_scale_lr = dict(enable=False, base_batch_size=4)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
