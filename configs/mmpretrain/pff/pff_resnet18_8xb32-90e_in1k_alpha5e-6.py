# PFF / SWP on ImageNet ResNet18, README table: alpha 5e-6 -> FLOPs -50.48 %, top-1 +0.23 %.
# Only alpha is published: delta (0.01 here) and the schedule (pytorch/examples defaults:
# 90 epochs, batch 256, lr 0.1 /10 every 30 epochs, wd 1e-4) are UNVERIFIED assumptions.
# Data: ImageNet under data/imagenet (mmpretrain layout with meta/train.txt, meta/val.txt).
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mm_ext.mmpretrain', 'mm_ext.mmpretrain.pff'], allow_failed_imports=False)

model = dict(
    type='PFFImageClassifier',
    backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(3, ), style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=512,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)),
    fs_unregularized=r'downsample')

data_preprocessor = dict(num_classes=1000, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                         to_rgb=True)
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=32, num_workers=8,
                        dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
                        sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(batch_size=32, num_workers=8,
                      dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
                      sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60], gamma=0.1)]
train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)

custom_hooks = [dict(type='PFFHook', alpha=5e-6, threshold=0.01, input_shape=(3, 224, 224))]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_best='accuracy/top1', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
env_cfg = dict(cudnn_benchmark=True, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=1, deterministic=False)
