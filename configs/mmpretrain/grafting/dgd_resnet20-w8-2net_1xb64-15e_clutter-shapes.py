# Quick DGD: grafting of 2 ResNet-20-w8 + online distillation (project defaults, unverified): T^2 KL at
# T = 2, weight 1, teacher = the other member's eval-mode logits (no gradient) on the student's own batch;
# every member reads its own stream, as in grafting. mode='soft_ce' (the offline prototype's asymmetric
# loss) collapses online: see GraftingClassifier.
_base_ = ['./_base_/clutter_shapes_quick.py']
model = dict(dgd=dict(weight=1.0, temperature=2.0, mode='kl', teacher_inputs='own'))
