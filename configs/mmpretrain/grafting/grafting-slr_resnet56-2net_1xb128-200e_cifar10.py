# Filter grafting, 2 networks, README slr recipe (same LR 0.1, StepLR 60); resnet56 on CIFAR-10.
_base_ = ['./_base_/model_cifar_resnet.py', './_base_/cifar10_grafting.py', './_base_/schedule_cifar_slr.py',
          './_base_/grafting_runtime.py']
model = dict(net=dict(backbone=dict(depth=56)))
