# Quick filter grafting: 2 ResNet-20-w8 on clutter-shapes-cifar, slr (same LR), pre-graft evaluation.
# One process: python tools/train.py THIS; one network per rank: bash tools/dist_train.sh THIS 2
_base_ = ['./_base_/clutter_shapes_quick.py']
