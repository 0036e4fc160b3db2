# PFF CIFAR-10 recipe shared by the paper configs (spec A.9): 160 epochs, batch 64,
# SGD 0.1 momentum 0.9 wd 1e-4 (on weights, skeletons and BN), x0.1 at epochs 80 and 120,
# pad-4 crop + flip, test every epoch, keep the best-by-test checkpoint (official selection).
# Real CIFAR-10: put cifar-10-batches-py/ under data/cifar10.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mm_ext.mmpretrain', 'mm_ext.mmpretrain.pff'], allow_failed_imports=False)

data_root = 'data/cifar10'
dataset_type = 'CIFAR10'
data_preprocessor = dict(
    num_classes=10,
    mean=[125.307, 122.961, 113.8575],   # (0.4914, 0.4822, 0.4465) * 255
    std=[51.5865, 50.847, 51.255],       # (0.2023, 0.1994, 0.2010) * 255
    to_rgb=False)
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64, num_workers=2,
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=64, num_workers=2,
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[80, 120], gamma=0.1)]
train_cfg = dict(by_epoch=True, max_epochs=160, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# the PFF training-time update; alpha = official --sr, threshold = official --threshold
# l1_mode='loss' (spec decision 1, AMP-safe); l1_mode='grad' = the official sign-gradient injection
custom_hooks = [dict(type='PFFHook', alpha=1e-5, threshold=0.01, l1_mode='loss', input_shape=(3, 32, 32))]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='accuracy/top1', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=1, deterministic=False)  # official seed 1
