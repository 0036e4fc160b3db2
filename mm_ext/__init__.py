"""mm-ext: 2020 computer-vision papers as plugins for OpenMMLab hosts and torchreid.

Importing ``mm_ext`` applies the small compatibility fixes of
:mod:`mm_ext._compat` (checkpoint loading on torch >= 2.6, the missing
``mmaction.models.localizers.drn`` module) and imports no host. The host
adapters register themselves when imported, typically from a config::

    custom_imports = dict(imports=['mm_ext.mmdet'], allow_failed_imports=False)
"""
from ._compat import apply_all as _apply_compat

__version__ = '0.1.0'

_apply_compat()
