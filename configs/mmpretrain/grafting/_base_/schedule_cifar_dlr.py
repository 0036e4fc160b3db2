# README "dlr" recipe: member k starts at lr * (1 + cos(pi (N - k) / N)) / 2 (N = 2: 0.05, 0.1) and anneals
# to 0 with a per-iteration cosine over all 200 epochs. (The shipped shell script's combination,
# different LR + StepLR 60, is lr_mode='diff' with schedule_cifar_slr's StepLR.)
optim_wrapper = dict(constructor='GraftingOptimWrapperConstructor', lr_mode='diff',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=200, T_max=200, eta_min=0.0,
                        convert_to_iter_based=True)]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)
auto_scale_lr = dict(base_batch_size=128)
