# 1-network VGG16 baseline on the same recipe (README: 93.68 on CIFAR-10).
_base_ = ['./_base_/model_cifar_vgg16.py', './_base_/cifar10_grafting.py', './_base_/schedule_cifar_slr.py',
          './_base_/grafting_runtime.py']
model = dict(num_nets=1)
train_dataloader = dict(sampler=dict(num_streams=1))
