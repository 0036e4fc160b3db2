# Filter grafting of 2 ResNet-18 on ImageNet (README: 69.15 -> 71.19 for R18, 72.60 -> 74.58 for R34),
# one network per GPU: bash tools/dist_train.sh THIS_CONFIG 2 (or 2 networks in one process).
_base_ = ['./_base_/imagenet_grafting.py', './_base_/grafting_runtime.py']
model = dict(net=dict(backbone=dict(depth=18)))
custom_hooks = [dict(type='GraftingHook', evaluate='pre', input_shape=(3, 224, 224))]
