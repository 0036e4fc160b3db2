# DGD (arXiv 2004.12311; no official code, project defaults, numbers unverified): filter grafting of
# 2 ResNet-56 (slr recipe) + online distillation every iteration, L_k = CE + 1.0 * T^2 KL(softmax(t / T) ||
# softmax(z_k / T)), T = 2, teacher t = mean eval-mode logits of the other members on member k's own batch
# (no gradient); every member reads its own stream as in grafting. mode='soft_ce' = the authors' offline
# prototype loss (teacher at T = 1), which collapses when members teach each other online (see
# GraftingClassifier); teacher_inputs='shared' + sampler shared_order=True = teacher on shared batches.
_base_ = ['./_base_/model_cifar_resnet.py', './_base_/cifar10_grafting.py', './_base_/schedule_cifar_slr.py',
          './_base_/grafting_runtime.py']
model = dict(dgd=dict(weight=1.0, temperature=2.0, mode='kl', teacher_inputs='own'))
