# Filter grafting, 2 networks, README slr recipe (same LR 0.1, StepLR 60); resnet110 on CIFAR-100.
_base_ = ['./_base_/model_cifar_resnet.py', './_base_/cifar100_grafting.py', './_base_/schedule_cifar_slr.py',
          './_base_/grafting_runtime.py']
model = dict(net=dict(backbone=dict(depth=110), head=dict(num_classes=100)), data_preprocessor=dict(num_classes=100, mean=[129.304, 124.07, 112.434], std=[68.17, 65.392, 70.418]))
