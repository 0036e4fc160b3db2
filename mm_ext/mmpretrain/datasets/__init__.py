from .generated_cifar10 import GeneratedCIFAR10

__all__ = ['GeneratedCIFAR10']
