# "Shape only" experiment (paper Sec. 4.4 / README): a randomly initialised ResNet56 whose weights
# stay frozen; only the Filter Skeletons are trained (reported 80.58 % on CIFAR-10).
# Freezing = lr_mult 0 and decay_mult 0 on everything but the skeletons (mmengine picks the
# longest matching custom key, so 'filter_skeleton' wins over 'backbone'). BN running
# statistics still follow the data. No L1 push here: the skeleton is learned as a shape only.
_base_ = ['./pff_resnet56-cifar_1xb64-160e_cifar10.py']

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=0.0, decay_mult=0.0),
        'head': dict(lr_mult=0.0, decay_mult=0.0),
        'filter_skeleton': dict(lr_mult=1.0, decay_mult=1.0),
    }))
custom_hooks = [dict(type='PFFHook', alpha=0.0, threshold=0.0, input_shape=(3, 32, 32))]
