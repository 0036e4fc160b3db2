# PFF / SWP on the CIFAR VGG16 ("network-slimming" variant), paper Table 1:
# -92.66 % params, -71.16 % FLOPs, +0.4 % accuracy (alpha 1e-5, delta 0.01, BN gamma init 0.5).
# Every conv carries a regularised skeleton; every BN is masked by filter liveness.
_base_ = ['./_pff_cifar10_base.py']

model = dict(
    type='PFFImageClassifier',
    backbone=dict(type='PFFCifarVGG', bn_weight_init=0.5),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=512,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, ),
              init_cfg=dict(type='Normal', layer='Linear', std=0.01)))
