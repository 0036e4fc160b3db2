# CIFAR VGG16 (network-slimming variant, 13 conv-BN-ReLU) ring members: the project's CIFAR VGG backbone
# with standard init (BN gamma 1).
model = dict(
    type='GraftingClassifier',
    num_nets=2,
    net=dict(type='ImageClassifier',
             backbone=dict(type='PFFCifarVGG', bn_weight_init=1.0),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=10, in_channels=512,
                       loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, ))),
    data_preprocessor=dict(num_classes=10, mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255],
                           to_rgb=False))
