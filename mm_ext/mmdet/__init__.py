"""mmdet 3.3 adapters of mm-ext. Importing this package registers them::

    custom_imports = dict(imports=['mm_ext.mmdet'], allow_failed_imports=False)
"""
from . import noh  # noqa: F401

__all__ = ['noh']
