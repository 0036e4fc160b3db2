# Quick PFF run on the embedded digits-cifar set (tools/make_data.py digits-cifar): a VGG with
# the VGG16 layout at 1/8 width (final layers 64 wide), trained about a minute on 2 CPU cores.
# alpha/threshold are much larger than the paper's (1e-5 / 0.01 over 160 CIFAR epochs) so that
# the skeleton sparsifies within 20 short epochs (about 40 s); the recipe is otherwise the paper's.
_base_ = ['./_pff_cifar10_base.py']

data_root = 'data/digits-cifar'
dataset_type = 'GeneratedCIFAR10'
model = dict(
    type='PFFImageClassifier',
    backbone=dict(type='PFFCifarVGG', bn_weight_init=0.5,
                  cfg=(8, 8, 'M', 16, 16, 'M', 32, 32, 32, 'M', 64, 64, 64, 'M', 64, 64, 64)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, ),
              init_cfg=dict(type='Normal', layer='Linear', std=0.01)))
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=3),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(batch_size=64, num_workers=0,
                        dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline))
val_dataloader = dict(batch_size=100, num_workers=0,
                      dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', by_epoch=True, milestones=[12, 17], gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=20)
custom_hooks = [dict(type='PFFHook', alpha=7e-3, threshold=0.05, input_shape=(3, 32, 32),
                     log_interval_epochs=10)]
default_hooks = dict(logger=dict(type='LoggerHook', interval=10),
                     checkpoint=dict(type='CheckpointHook', interval=20, max_keep_ckpts=1, save_best=None))
randomness = dict(seed=0, deterministic=False)
