# PFF / SWP on CIFAR ResNet56 with 1x1-conv projection shortcuts, paper Table 1:
# params -75.6 % / FLOPs -77.7 % (the README swapped the two on 2022-07-10; quote both), -0.12 % acc.
# Skeletons on every conv; the 1x1 downsample convs keep an unregularised skeleton; only bn1 of a
# block is masked (bn2 feeds the residual add), which the hook derives by tracing.
_base_ = ['./_pff_cifar10_base.py']

model = dict(
    type='PFFImageClassifier',
    backbone=dict(type='PFFCifarResNet', depth=56, bn_weight_init=0.5),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, ),
              init_cfg=dict(type='Normal', layer='Linear', std=0.01)),
    fs_unregularized=r'downsample')
