"""Per-image labels beside torchreid's 4-field samples (viewpoint now, more later).

torchreid datasets yield ``{img, pid, camid, impath, dsetid}`` and unpack exactly four fields
per item, so extra labels live in a side table keyed by the image *file name* and are looked up
from the batch's ``impath`` in the engine (spec 4.6).
"""
import os.path as osp
import pickle
from typing import Dict, Iterable, Mapping

import torch

__all__ = ['SideLabels', 'load_viewpoint_labels']

_ALLOWED = {('numpy', 'dtype'), ('numpy.core.multiarray', 'scalar'),
            ('numpy._core.multiarray', 'scalar'), ('numpy', 'int64'), ('numpy', 'int32')}


class _LabelUnpickler(pickle.Unpickler):
    """Only builtins containers/ints/strings and numpy integer scalars may appear in a label file."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f'viewpoint label file refers to {module}.{name}; only dicts of '
                                     f'(int, str) tuples are accepted')


def load_viewpoint_labels(path: str) -> Dict[str, int]:
    """Read a viewpoint label file in the VA-reID release format.

    The file is a pickled ``dict`` ``image_name -> (coarse_id, fine_label)`` (coarse 0 front,
    1 side, 2 back); a bare ``image_name -> coarse_id`` dict is accepted too.

    Returns:
        dict: file base name -> coarse viewpoint id.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'viewpoint label file {path!r} not found: set va_reid.view_label_file '
                                f'to the released pickle (or leave it empty to predict viewpoints)')
    with open(path, 'rb') as f:
        raw = _LabelUnpickler(f).load()
    if not isinstance(raw, Mapping):
        raise ValueError(f'{path}: expected a dict image_name -> (coarse_id, fine_label), got '
                         f'{type(raw).__name__}')
    out = {}
    for k, v in raw.items():
        coarse = v[0] if isinstance(v, (tuple, list)) else v
        out[osp.basename(str(k))] = int(coarse)
    return out


class SideLabels:
    """Lookup of integer labels by image path (base name), ``missing`` when absent.

    Args:
        table (Mapping[str, int]): base name -> label.
        missing (int): label of unknown images. Defaults to -1.
    """

    def __init__(self, table: Mapping[str, int], missing: int = -1):
        self.table = dict(table)
        self.missing = missing

    def __len__(self):
        return len(self.table)

    def lookup(self, impaths: Iterable[str]) -> torch.Tensor:
        """(B,) int64 labels of the given image paths."""
        return torch.tensor([self.table.get(osp.basename(p), self.missing) for p in impaths],
                            dtype=torch.int64)
