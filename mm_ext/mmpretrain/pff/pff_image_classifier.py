"""ImageClassifier whose convs carry Filter Skeletons from construction on (PFF, spec E.1)."""
from typing import List, Sequence, Union

import torch
import torch.nn as nn
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS

from mm_ext._registry import register
from mm_ext.core.pruning import equip_filter_skeleton, filter_skeleton_convs, fs_l1_penalty, reshape_to_state_dict


class _TensorPath(nn.Module):
    """backbone -> neck -> head as one fx-traceable module (same child names as the classifier)."""

    def __init__(self, backbone, neck, head):
        super().__init__()
        self.backbone = backbone
        if neck is not None:
            self.neck = neck
        self.head = head
        self.training = backbone.training

    def forward(self, x):
        feats = self.backbone(x)
        if hasattr(self, 'neck'):
            feats = self.neck(feats)
        return self.head(feats)


@register(MODELS)
class PFFImageClassifier(ImageClassifier):
    """``ImageClassifier`` with :class:`FilterSkeletonConv2d` on its eligible convs.

    `Pruning Filter in Filter <https://arxiv.org/abs/2009.14410>`_, Sec. 3.1. The skeletons
    are added in ``__init__`` (before mmengine builds the optimiser, so they are trained)
    and are never touched by ``init_weights``. Training-time sparsity, thresholding and BN
    masking are done by :class:`PFFHook`. A state dict of a *pruned* model (from
    ``tools/pff_prune.py``) loads into this class: the affected modules are rebuilt to
    the stored shapes first.

    Args:
        fs_include (str | list[str], optional): regexes (``re.search`` on names such as
            ``backbone.layer1.0.conv1``) of convs to equip. Defaults to ``r'^backbone\\.'``.
        fs_exclude (str | list[str], optional): regexes of convs to skip. Defaults to None.
        fs_unregularized (str | list[str], optional): convs that get a skeleton but no L1 /
            threshold (shortcut projections). Defaults to ``r'(downsample|shortcut)'``.
        **kwargs: as ``ImageClassifier`` (backbone, neck, head, ...).

    Note:
        ``fs_l1_alpha`` (float, default 0) is set by :class:`PFFHook` when its
        ``l1_mode='loss'``; the loss dict then carries ``loss_fs_l1 = α·Σ|I|``.
    """

    def __init__(self, *args, fs_include: Union[str, Sequence[str], None] = r'^backbone\.',
                 fs_exclude: Union[str, Sequence[str], None] = None,
                 fs_unregularized: Union[str, Sequence[str], None] = r'(downsample|shortcut)', **kwargs):
        super().__init__(*args, **kwargs)
        self.fs_names: List[str] = equip_filter_skeleton(self, include=fs_include, exclude=fs_exclude,
                                                         unregularized=fs_unregularized)
        if not self.fs_names:
            raise ValueError(f'PFFImageClassifier: no eligible conv matched fs_include={fs_include!r} '
                             f'(fs_exclude={fs_exclude!r}); check the module names of the backbone')
        self.fs_l1_alpha = 0.0

    def tensor_path(self) -> nn.Module:
        """The fx-traceable image -> logits module sharing this model's submodules."""
        return _TensorPath(self.backbone, self.neck, self.head)

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        losses = super().loss(inputs, data_samples)
        if self.fs_l1_alpha > 0:
            losses['loss_fs_l1'] = fs_l1_penalty(
                [m.filter_skeleton for _, m in filter_skeleton_convs(self) if m.regularized], self.fs_l1_alpha)
        return losses

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if any(k.startswith(prefix) and k.endswith('.stripe_mask') for k in state_dict):
            reshape_to_state_dict(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
