# Filter-level grafting of 2 VGG16 (README: 94.26 on CIFAR-10): per-channel coefficients
# w_o = |gamma_o| / (|gamma_o| + |gamma_pred_o|) for conv filter o and BN channel o (the intended method,
# not the committed script, which cannot run); input_side=True also blends input slices by the previous BN.
_base_ = ['./_base_/model_cifar_vgg16.py', './_base_/cifar10_grafting.py', './_base_/schedule_cifar_slr.py',
          './_base_/grafting_runtime.py']
custom_hooks = [dict(type='GraftingHook', evaluate='pre', level='filter', input_side=False)]
