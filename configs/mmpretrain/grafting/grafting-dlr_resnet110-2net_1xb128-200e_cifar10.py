# Filter grafting, 2 networks, README dlr recipe (LR 0.05 / 0.1, per-iteration cosine); resnet110 on CIFAR-10.
_base_ = ['./_base_/model_cifar_resnet.py', './_base_/cifar10_grafting.py', './_base_/schedule_cifar_dlr.py',
          './_base_/grafting_runtime.py']
model = dict(net=dict(backbone=dict(depth=110)))
