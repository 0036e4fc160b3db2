# Linear probe on scene-bias-video: frozen tiny ResNet3d from a pretraining checkpoint
# (--cfg-options load_from=work_dirs/<pretrain>/epoch_20.pth), linear head trained on the
# scene-correlated train split; 'test' = decorrelated split (scenes independent of labels),
# 'val' = held-out scene-correlated split.
_base_ = ['../_base_/video_ssl_runtime.py']
data_root = 'data/scene-bias-video/'
model = dict(
    type='Recognizer3D',
    backbone=dict(type='ResNet3d', depth=18, pretrained=None, pretrained2d=False,
                  base_channels=16, stage_blocks=(1, 1, 1, 1), conv1_kernel=(3, 7, 7),
                  with_pool1=False, inflate=(1, 1, 1, 1), spatial_strides=(1, 2, 2, 2),
                  temporal_strides=(1, 1, 1, 1), zero_init_residual=False,
                  frozen_stages=4, norm_eval=True),
    cls_head=dict(type='I3DHead', num_classes=4, in_channels=128, spatial_type='avg',
                  dropout_ratio=0.0, init_std=0.01, average_clips='prob'),
    data_preprocessor=dict(type='ActionDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], format_shape='NCTHW'))
_train = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=1, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 36)),
    dict(type='RandomCrop', size=32),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
_test = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=1, num_clips=2, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 36)),
    dict(type='CenterCrop', crop_size=32),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=0, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='VideoDataset', ann_file=data_root + 'train_list_videos.txt',
                 data_prefix=dict(video=data_root + 'videos'), pipeline=_train))
val_dataloader = dict(
    batch_size=16, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VideoDataset', ann_file=data_root + 'val_list_videos.txt',
                 data_prefix=dict(video=data_root + 'videos'), pipeline=_test, test_mode=True))
test_dataloader = dict(
    batch_size=16, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VideoDataset', ann_file=data_root + 'test_list_videos.txt',
                 data_prefix=dict(video=data_root + 'videos'), pipeline=_test, test_mode=True))
val_evaluator = dict(type='AccMetric')
test_evaluator = dict(type='AccMetric')
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=30, val_begin=30, val_interval=30)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=30, eta_min=0.0)]
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=30, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
