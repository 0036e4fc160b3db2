"""Compatibility fixes for the hosts on torch 2.14 / numpy 2, one small module each.

Every fix is idempotent and applied by :func:`apply_all` when ``mm_ext`` or
``reid_ext`` is imported. None of them imports mmdet, mmaction2, mmpretrain or
torchreid eagerly.
"""
from .atomic_save import apply as _apply_atomic_save
from .checkpoint import apply as _apply_checkpoint
from .data_validation import apply as _apply_data_validation
from .host_warnings import apply as _apply_host_warnings
from .mmaction_drn import apply as _apply_mmaction_drn

__all__ = ['apply_all']


def apply_all() -> None:
    _apply_host_warnings()
    _apply_mmaction_drn()
    _apply_checkpoint()
    _apply_atomic_save()
    _apply_data_validation()
