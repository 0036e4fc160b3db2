# Quick runs on the embedded clutter-shapes-cifar set (python tools/make_data.py clutter-shapes-cifar):
# 2 ResNet-20 of width 8 (PFFCifarResNet, projection shortcuts), batch 64, 15 epochs, SGD 0.1,
# x0.1 at epochs 9 and 13, CPU-friendly (a few seconds per epoch and network on one core).
_base_ = ['./grafting_runtime.py']
data_root = 'data/clutter-shapes-cifar'
dataset_type = 'GeneratedCIFAR10'
data_preprocessor = dict(num_classes=10, mean=[84.0, 84.0, 84.0], std=[60.0, 60.0, 60.0], to_rgb=False)
model = dict(
    type='GraftingClassifier',
    num_nets=2,
    net=dict(type='ImageClassifier',
             backbone=dict(type='PFFCifarResNet', depth=20, base_channels=8, bn_weight_init=1.0),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=10, in_channels=32,
                       loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, ))),
    data_preprocessor=data_preprocessor)
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64, num_workers=0,
    dataset=dict(type='GraftingDataset',
                 dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline)),
    sampler=dict(type='GraftingSampler', num_streams=2, shuffle=True))
val_dataloader = dict(
    batch_size=250, num_workers=0,
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
optim_wrapper = dict(constructor='GraftingOptimWrapperConstructor', lr_mode='same',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[9, 13], gamma=0.1)]
train_cfg = dict(by_epoch=True, max_epochs=15, val_interval=1)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
