# 1-network baseline on the same pipeline and slr recipe (no grafting); resnet56 on CIFAR-100.
_base_ = ['./_base_/model_cifar_resnet.py', './_base_/cifar100_grafting.py', './_base_/schedule_cifar_slr.py',
          './_base_/grafting_runtime.py']
model = dict(net=dict(backbone=dict(depth=56), head=dict(num_classes=100)), data_preprocessor=dict(num_classes=100, mean=[129.304, 124.07, 112.434], std=[68.17, 65.392, 70.418]), num_nets=1)
train_dataloader = dict(sampler=dict(num_streams=1))
