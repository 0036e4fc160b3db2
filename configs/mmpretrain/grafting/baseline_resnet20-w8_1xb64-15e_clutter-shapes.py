# Quick 1-network baseline on the same pipeline and recipe as the quick grafting config.
_base_ = ['./_base_/clutter_shapes_quick.py']
model = dict(num_nets=1)
train_dataloader = dict(sampler=dict(num_streams=1))
