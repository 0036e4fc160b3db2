"""Stripe-wise pruning with a Filter Skeleton (PFF / SWP).

`Pruning Filter in Filter <https://arxiv.org/abs/2009.14410>`_ (NeurIPS 2020).
Torch-only core: the Filter-Skeleton conv and model surgery, the training-time
skeleton update, the stripe-wise pruned conv (fast, exact) and the physical
pruning of a trained model.
"""
from .cifar_nets import CIFAR_VGG16_CFG, CifarBasicBlock, CifarResNet, CifarVGG
from .filter_skeleton_conv import FilterSkeletonConv2d, skeleton_ineligibility, skeleton_kind, stripe_ineligibility
from .surgery import dense_layers, equip_filter_skeleton, unequip_filter_skeleton, filter_skeleton_convs
from .stripe_conv import StripeConv2d, compute_dtype, masked_conv2d
from .pruned_conv import PrunedConv2d, choose_forms
from .channel_graph import ChannelGroup, trace_channel_groups
from .regularizer import FilterSkeletonRegularizer
from .skeleton_update import (add_l1_sign_grad, fs_l1_penalty, threshold_skeleton, mask_bn_by_liveness,
                              zero_dead_momentum)
from .prune import (DroppedBlock, build_pruned_arch, decode_arch, encode_arch, count_params, count_params_flops, drop_dead_blocks, fold_batchnorm,
                    fold_filter_skeleton, plain_conv, prune_filter_skeleton, pruned_arch, stripe_masks,
                    vanishing_dead_channels)

__all__ = [
    'FilterSkeletonRegularizer', 'CIFAR_VGG16_CFG', 'CifarBasicBlock', 'CifarResNet', 'CifarVGG',
    'FilterSkeletonConv2d', 'stripe_ineligibility', 'equip_filter_skeleton', 'unequip_filter_skeleton',
    'filter_skeleton_convs', 'StripeConv2d', 'masked_conv2d', 'PrunedConv2d', 'ChannelGroup',
    'trace_channel_groups', 'add_l1_sign_grad', 'fs_l1_penalty', 'threshold_skeleton', 'mask_bn_by_liveness',
    'zero_dead_momentum', 'prune_filter_skeleton', 'stripe_masks', 'count_params', 'count_params_flops',
    'fold_filter_skeleton', 'skeleton_ineligibility', 'skeleton_kind', 'dense_layers', 'compute_dtype',
    'choose_forms', 'DroppedBlock', 'build_pruned_arch', 'drop_dead_blocks', 'plain_conv', 'pruned_arch',
    'vanishing_dead_channels', 'fold_batchnorm', 'encode_arch', 'decode_arch'
]
