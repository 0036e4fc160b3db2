"""PFF (stripe-wise pruning with a Filter Skeleton) adapters for mmpretrain.

`Pruning Filter in Filter <https://arxiv.org/abs/2009.14410>`_. Importing registers
``PFFCifarVGG``, ``PFFCifarResNet`` (MODELS backbones), ``PFFImageClassifier`` (MODELS)
and ``PFFHook`` (HOOKS).
"""
from .pff_cifar_resnet import PFFCifarResNet
from .pff_cifar_vgg import PFFCifarVGG
from .pff_hook import PFFHook
from .pff_image_classifier import PFFImageClassifier

__all__ = ['PFFCifarVGG', 'PFFCifarResNet', 'PFFImageClassifier', 'PFFHook']
