# MobileNetV2 ring members from mmpretrain's stock backbone (ImageNet strides: 32x32 -> 1x1; the
# official CIFAR MobileNetV2 uses stride 1 in the stem and the second stage).
model = dict(
    type='GraftingClassifier',
    num_nets=2,
    net=dict(type='ImageClassifier',
             backbone=dict(type='MobileNetV2', widen_factor=1.0),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=10, in_channels=1280,
                       loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, ))),
    data_preprocessor=dict(num_classes=10, mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255],
                           to_rgb=False))
