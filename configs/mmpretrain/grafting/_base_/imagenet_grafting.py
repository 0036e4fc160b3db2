# ImageNet-1k for N ring members (whole set per member, own order). data_root holds train/ and val/
# (mmpretrain's ImageNet layout); pretrained weights are never downloaded. RandomResizedCrop 224 + flip;
# test Resize 256 / CenterCrop 224. One network per GPU: tools/dist_train.sh CONFIG 2.
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
model = dict(
    type='GraftingClassifier',
    num_nets=2,
    net=dict(type='ImageClassifier',
             backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(3, ), style='pytorch'),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=1000, in_channels=512,
                       loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5))),
    data_preprocessor=dict(num_classes=1000, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           to_rgb=True))
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
train_dataloader = dict(
    batch_size=256, num_workers=8, persistent_workers=True,
    dataset=dict(type='GraftingDataset',
                 dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline)),
    sampler=dict(type='GraftingSampler', num_streams=2, shuffle=True))
val_dataloader = dict(
    batch_size=100, num_workers=8, persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
# Official grafting schedule: SGD 0.1, momentum 0.9, wd 1e-4, 90 epochs, per-iteration cosine. The
# baseline uses the SAME schedule (spec decision 15; the official baseline script used step LR, a confound).
optim_wrapper = dict(constructor='GraftingOptimWrapperConstructor', lr_mode='same',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=90, T_max=90, eta_min=0.0,
                        convert_to_iter_based=True)]
train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=1)
auto_scale_lr = dict(base_batch_size=256)
