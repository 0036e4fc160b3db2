"""ImageClassifier whose convs carry Filter Skeletons from construction on (PFF, spec E.1)."""
import os
import warnings
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS

from mm_ext._registry import register
from mm_ext.core.pruning import (build_pruned_arch, decode_arch, encode_arch, equip_filter_skeleton, filter_skeleton_convs, fs_l1_penalty,
                                 prune_filter_skeleton, pruned_arch)


def load_pruned_arch(path: str) -> dict:
    """The pruned-architecture record written by ``tools/pff_prune.py`` (``*_arch.pth``, or a
    pruned checkpoint holding it)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'pruned_arch: {path!r} not found; write it with tools/pff_prune.py')
    obj = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(obj, dict) and 'state_dict' in obj:
        record = obj['state_dict'].get('pff_arch_record')
        if record is None or decode_arch(record) is None:
            raise ValueError(f'pruned_arch: {path!r} is not a pruned checkpoint (no pff_arch_record)')
        obj = decode_arch(record)
    return obj


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
    the stored architecture first (fine for testing; for fine-tuning build the pruned
    architecture at construction with ``pruned_arch`` so the optimiser and DDP see the
    pruned parameters).

    Args:
        fs_include (str | list[str], optional): regexes (``re.search`` on names such as
            ``backbone.layer1.0.conv1``) of convs to equip. Defaults to ``r'^backbone\\.'``.
        fs_exclude (str | list[str], optional): regexes of convs to skip. Defaults to None.
        fs_unregularized (str | list[str], optional): convs that get a skeleton but no L1 /
            threshold (shortcut projections). Defaults to ``r'(downsample|shortcut)'``.
        pruned_arch (str | dict, optional): pruned-architecture record (``*_arch.pth`` from
            ``tools/pff_prune.py``, or a pruned checkpoint): the model is restructured to it at
            construction, so ``tools/train.py`` fine-tunes the pruned network (single process
            or DDP) with ``load_from`` = the pruned checkpoint. Defaults to None.
        **kwargs: as ``ImageClassifier`` (backbone, neck, head, ...).

    Note:
        ``fs_l1_alpha`` (float, default 0) is set by :class:`PFFHook` when its
        ``l1_mode='loss'``; the loss dict then carries ``loss_fs_l1 = α·Σ|I|``.
    """

    def __init__(self, *args, fs_include: Union[str, Sequence[str], None] = r'^backbone\.',
                 fs_exclude: Union[str, Sequence[str], None] = None,
                 fs_unregularized: Union[str, Sequence[str], None] = r'(downsample|shortcut)',
                 pruned_arch: Union[str, dict, None] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fs_names: List[str] = equip_filter_skeleton(self, include=fs_include, exclude=fs_exclude,
                                                         unregularized=fs_unregularized)
        if not self.fs_names:
            raise ValueError(f'PFFImageClassifier: no nn.Conv2d matched fs_include={fs_include!r} '
                             f'(fs_exclude={fs_exclude!r}); check the module names of the backbone')
        self.fs_l1_alpha = 0.0
        self.pff_arch = None
        if pruned_arch is not None:
            where = pruned_arch if isinstance(pruned_arch, str) else 'pruned_arch'
            arch = load_pruned_arch(pruned_arch) if isinstance(pruned_arch, str) else pruned_arch
            build_pruned_arch(self, arch, where=f'PFFImageClassifier(pruned_arch={where!r})')
            self.pff_arch = arch
            self.fs_names = [n for n, _ in filter_skeleton_convs(self)]

    def tensor_path(self) -> nn.Module:
        """The fx-traceable image -> logits module sharing this model's submodules."""
        return _TensorPath(self.backbone, self.neck, self.head)

    @torch.no_grad()
    def prune(self, example_input: torch.Tensor, threshold: float, form: str = 'dense',
              dead_blocks: str = 'keep') -> dict:
        """Physically prune in place (:func:`~mm_ext.core.pruning.prune_filter_skeleton` on the
        image -> logits path) and record the pruned architecture (saved in the state dict).

        Returns:
            dict: the per-conv report of ``prune_filter_skeleton``.
        """
        report = prune_filter_skeleton(self, example_input, threshold, form=form, root=self.tensor_path(),
                                       dead_blocks=dead_blocks)
        self.pff_arch = pruned_arch(self)
        self.fs_names = [n for n, _ in filter_skeleton_convs(self)]
        return report

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        losses = super().loss(inputs, data_samples)
        if self.fs_l1_alpha > 0:
            losses['loss_fs_l1'] = fs_l1_penalty(
                [m.filter_skeleton for _, m in filter_skeleton_convs(self) if m.regularized], self.fs_l1_alpha)
        return losses

    @property
    def pff_arch(self) -> Optional[dict]:
        """The pruned architecture record (None before pruning); it travels in the state dict as the
        uint8 buffer ``pff_arch_record`` (a tensor, so DDP's state broadcast works)."""
        return self._pff_arch

    @pff_arch.setter
    def pff_arch(self, arch: Optional[dict]) -> None:
        self._pff_arch = arch
        record = encode_arch(arch)
        if 'pff_arch_record' in self._buffers:
            record = record.to(self._buffers['pff_arch_record'].device)
        self.register_buffer('pff_arch_record', record)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        record = state_dict.get(prefix + 'pff_arch_record')
        arch = decode_arch(record) if record is not None else None
        if arch is not None and self.pff_arch is None:
            build_pruned_arch(self, arch, where='checkpoint')
            self.pff_arch = arch
            self.fs_names = [n for n, _ in filter_skeleton_convs(self)]
            warnings.warn('PFFImageClassifier: restructured to the pruned architecture while loading weights; an '
                          'optimiser or DDP wrapper built before loading misses the new parameters. To fine-tune, '
                          'set model.pruned_arch=<the *_arch.pth of tools/pff_prune.py>.')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
