# CIFAR-100 for N ring members: each member reads the whole training set in its own order
# (GraftingSampler, num_streams must equal model.num_nets). Official augmentation: RandomCrop 32
# pad 4 + horizontal flip; batch 128, test batch 100. data_root holds cifar-100-python/.
dataset_type = 'CIFAR100'
data_root = 'data/cifar100'
num_classes = 100
data_preprocessor = dict(num_classes=100, mean=[129.304, 124.07, 112.434], std=[68.17, 65.392, 70.418],
                         to_rgb=False)
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128, num_workers=2, persistent_workers=True,
    dataset=dict(type='GraftingDataset',
                 dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline)),
    sampler=dict(type='GraftingSampler', num_streams=2, shuffle=True))
val_dataloader = dict(
    batch_size=100, num_workers=2, persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
