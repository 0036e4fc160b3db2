# README "slr" recipe: 200 epochs, SGD 0.1 (same for every member), momentum 0.9, wd 5e-4, x0.1 every 60 epochs.
optim_wrapper = dict(constructor='GraftingOptimWrapperConstructor', lr_mode='same',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='StepLR', by_epoch=True, step_size=60, gamma=0.1)]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)
auto_scale_lr = dict(base_batch_size=128)
