# Filter grafting, 2 networks, README dlr recipe (LR 0.05 / 0.1, per-iteration cosine); mobilenet-v2 on CIFAR-100.
_base_ = ['./_base_/model_cifar_mobilenet_v2.py', './_base_/cifar100_grafting.py', './_base_/schedule_cifar_dlr.py',
          './_base_/grafting_runtime.py']
model = dict(net=dict(head=dict(num_classes=100)), data_preprocessor=dict(num_classes=100, mean=[129.304, 124.07, 112.434], std=[68.17, 65.392, 70.418]))
