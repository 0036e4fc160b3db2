# 1-network baseline on the same pipeline and slr recipe (no grafting); mobilenet-v2 on CIFAR-10.
_base_ = ['./_base_/model_cifar_mobilenet_v2.py', './_base_/cifar10_grafting.py', './_base_/schedule_cifar_slr.py',
          './_base_/grafting_runtime.py']
model = dict(num_nets=1)
train_dataloader = dict(sampler=dict(num_streams=1))
