# LR-tuned 1-network baseline: lr 0.02, the best baseline LR of the maintainers' MobileNetV2 rerun (fxmeng/filter-grafting #17); sweep with --cfg-options optim_wrapper.optimizer.lr=X; resnet56 on CIFAR-100.
_base_ = ['./_base_/model_cifar_resnet.py', './_base_/cifar100_grafting.py', './_base_/schedule_cifar_slr.py',
          './_base_/grafting_runtime.py']
model = dict(net=dict(backbone=dict(depth=56), head=dict(num_classes=100)), data_preprocessor=dict(num_classes=100, mean=[129.304, 124.07, 112.434], std=[68.17, 65.392, 70.418]), num_nets=1)
train_dataloader = dict(sampler=dict(num_streams=1))
optim_wrapper = dict(optimizer=dict(lr=0.02))
