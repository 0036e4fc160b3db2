# 1-network ResNet-34 ImageNet baseline on the SAME per-iteration cosine schedule as the grafting config.
_base_ = ['./_base_/imagenet_grafting.py', './_base_/grafting_runtime.py']
model = dict(num_nets=1, net=dict(backbone=dict(depth=34)))
train_dataloader = dict(sampler=dict(num_streams=1))
