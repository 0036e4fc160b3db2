# Filter grafting, 2 networks, README slr recipe (same LR 0.1, StepLR 60); mobilenet-v2 on CIFAR-10.
_base_ = ['./_base_/model_cifar_mobilenet_v2.py', './_base_/cifar10_grafting.py', './_base_/schedule_cifar_slr.py',
          './_base_/grafting_runtime.py']
