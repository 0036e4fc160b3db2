# DGD (arXiv 2004.12311; no official code, project defaults, numbers unverified): filter grafting of
# 2 ResNet-56 (slr recipe) + online distillation every iteration, L_k = CE + 1.0 * T^2 softCE(teacher =
# detached mean logits of the other members, student / T), T = 2. The members read the same batches
# (shared_order) so that the teacher sees the student's inputs. mode='kl' = symmetric KL variant.
_base_ = ['./_base_/model_cifar_resnet.py', './_base_/cifar10_grafting.py', './_base_/schedule_cifar_slr.py',
          './_base_/grafting_runtime.py']
model = dict(dgd=dict(weight=1.0, temperature=2.0, mode='soft_ce'))
train_dataloader = dict(sampler=dict(shared_order=True))
