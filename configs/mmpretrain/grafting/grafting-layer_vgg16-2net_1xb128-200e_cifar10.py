# Layer-level grafting of 2 VGG16 (README: 94.02 on CIFAR-10), the comparison for the filter-level variant.
_base_ = ['./_base_/model_cifar_vgg16.py', './_base_/cifar10_grafting.py', './_base_/schedule_cifar_slr.py',
          './_base_/grafting_runtime.py']
