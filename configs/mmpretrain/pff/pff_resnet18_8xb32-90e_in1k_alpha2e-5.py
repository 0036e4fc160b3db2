# PFF / SWP on ImageNet ResNet18, README table: alpha 2e-5 -> FLOPs -54.58 %, top-1 -0.17 %.
_base_ = ['./pff_resnet18_8xb32-90e_in1k_alpha5e-6.py']

custom_hooks = [dict(type='PFFHook', alpha=2e-5, threshold=0.01, input_shape=(3, 224, 224))]
