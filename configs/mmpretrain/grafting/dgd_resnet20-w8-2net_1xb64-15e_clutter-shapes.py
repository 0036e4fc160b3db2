# Quick DGD: grafting of 2 ResNet-20-w8 + online distillation (T = 2, weight 1, soft CE against the
# detached mean logits of the other member on the same batch; project defaults, unverified).
_base_ = ['./_base_/clutter_shapes_quick.py']
model = dict(dgd=dict(weight=1.0, temperature=2.0, mode='soft_ce'))
train_dataloader = dict(sampler=dict(shared_order=True))
