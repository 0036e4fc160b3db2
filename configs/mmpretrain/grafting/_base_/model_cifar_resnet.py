# CIFAR ResNet (6n + 2) ring members. Backbone: the project's CIFAR ResNet (PFFCifarResNet, 1x1-conv
# projection shortcuts "option B"; the official grafting models use zero-padding "option A"
# shortcuts) with standard init (BN gamma 1). Override depth with model.net.backbone.depth.
model = dict(
    type='GraftingClassifier',
    num_nets=2,
    net=dict(type='ImageClassifier',
             backbone=dict(type='PFFCifarResNet', depth=56, base_channels=16, bn_weight_init=1.0),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
                       loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, ))),
    data_preprocessor=dict(num_classes=10, mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255],
                           to_rgb=False))
