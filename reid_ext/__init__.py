import mm_ext  # noqa: F401  (applies the compat fixes, incl. the safe checkpoint loader)
__doc__ = """reid_ext: person re-identification plugins for torchreid 0.2.5.

Importing the package registers, idempotently, the models into torchreid's model factory and
the datasets via ``register_image_dataset`` (see :mod:`reid_ext._register`). The torch/numpy
algorithms live in :mod:`reid_ext.core` and need no torchreid.
"""
from ._register import register_all

__all__ = ['register_all']

register_all()
