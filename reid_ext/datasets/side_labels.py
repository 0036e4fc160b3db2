"""Per-image labels beside torchreid's 4-field samples (viewpoint now, more later).

torchreid datasets yield ``{img, pid, camid, impath, dsetid}`` and unpack exactly four fields
per item, so extra labels live in a side table keyed by the image *file name* and are looked up
from the batch's ``impath`` in the engine (spec 4.6).
"""
import os.path as osp
import pickle
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import torch

__all__ = ['SideLabels', 'load_viewpoint_labels', 'resolve_viewpoint_labels']

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
                                f'to the released pickle (zzhsysu/VA-ReID), one per source dataset')
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
    """Lookup of integer labels by image path, ``missing`` when absent.

    Args:
        table (Mapping[str, int]): key -> label.
        missing (int): label of unknown images. Defaults to -1.
        by (str): ``name``: keys are file base names (the release files); ``path``: keys are the
            full image paths of the data set (no clash between datasets sharing file names).
            Defaults to ``name``.
    """

    def __init__(self, table: Mapping[str, int], missing: int = -1, by: str = 'name'):
        if by not in ('name', 'path'):
            raise ValueError(f"by must be 'name' or 'path', got {by!r}")
        self.table = dict(table)
        self.missing = missing
        self.by = by

    def __len__(self):
        return len(self.table)

    def lookup(self, impaths: Iterable[str]) -> torch.Tensor:
        """(B,) int64 labels of the given image paths."""
        key = osp.basename if self.by == 'name' else (lambda p: p)
        return torch.tensor([self.table.get(key(p), self.missing) for p in impaths],
                            dtype=torch.int64)


def _source_of(item, num_sources: int) -> int:
    dsetid = int(item[3]) if len(item) > 3 else 0
    if not 0 <= dsetid < num_sources:
        raise ValueError(f'training item {item[0]} has dataset id {dsetid} for {num_sources} sources')
    return dsetid


def resolve_viewpoint_labels(train: Sequence, sources: Sequence[str],
                             label_files: Union[str, Sequence[str]] = (),
                             default_file: Optional[Callable[[str], str]] = None,
                             fallback_classifier: bool = False) -> SideLabels:
    """The viewpoint table of a (possibly multi-source) training set, keyed by image path.

    Each source dataset has its own label file: ``label_files[i]`` for ``sources[i]``, or, where
    that entry is empty (or the list is), the file ``default_file(source)`` the dataset ships
    (synth-ped's ``viewpoint_labels.pkl``). One file for several sources applies to all of them.
    The files of the sources are merged per source (file names may repeat across datasets).

    Args:
        train (Sequence): torchreid training items ``(impath, pid, camid, dsetid)``; ``dsetid``
            is the index of the item's source (torchreid's order of ``data.sources``).
        sources (Sequence[str]): names of the source datasets (``data.sources``).
        label_files (str | Sequence[str]): ``va_reid.view_label_file``.
        default_file (Callable, optional): source name -> its own label file, or ''.
        fallback_classifier (bool): allow images without a label (a viewpoint classifier trained
            on the labelled ones predicts them later). Defaults to False.

    Returns:
        SideLabels: ``by='path'``, -1 where unknown (only with ``fallback_classifier``).

    Raises:
        FileNotFoundError / ValueError: a source without a label file, a missing file, images
            without labels (without ``fallback_classifier``), or no labelled image at all; the
            message names the option to set.
    """
    if isinstance(label_files, str):
        label_files = [label_files] if label_files else []
    files: List[str] = list(label_files)
    sources = list(sources)
    if len(files) == 1 and len(sources) > 1:
        files = files * len(sources)
    if files and len(files) != len(sources):
        raise ValueError(f'va_reid.view_label_file has {len(files)} entries for {len(sources)} '
                         f'source datasets {sources}: give one file per source, in the order of '
                         f'data.sources ("" = the dataset\'s own file)')
    files = files or [''] * len(sources)
    fix = ('set va_reid.view_label_file to the viewpoint label files, one per source in the order '
           'of data.sources (the VA-reID release pickles, zzhsysu/VA-ReID), or set '
           'va_reid.fallback_classifier True to train a viewpoint classifier on the labelled images '
           'before its predictions are used')
    if default_file is not None:
        files = [path or default_file(name) or '' for name, path in zip(sources, files)]
    without = [name for name, path in zip(sources, files) if not path]
    if without:
        raise FileNotFoundError(f'VA-reID: no viewpoint label file for source dataset(s) '
                                f'{", ".join(map(repr, without))}: {fix}')
    tables = [load_viewpoint_labels(path) for path in files]
    table, missing = {}, []
    for item in train:
        i = _source_of(item, len(sources))
        label = tables[i].get(osp.basename(item[0]))
        if label is None:
            missing.append((sources[i], item[0]))
        else:
            table[item[0]] = label
    if missing and not fallback_classifier:
        per_source = {}
        for name, _ in missing:
            per_source[name] = per_source.get(name, 0) + 1
        raise ValueError(f'VA-reID: {len(missing)} of {len(train)} training images have no '
                         f'viewpoint label (per source: {per_source}; e.g. '
                         f'{osp.basename(missing[0][1])!r}): {fix}')
    if not table:
        raise ValueError('VA-reID: none of the training images has a viewpoint label, so the '
                         'fallback viewpoint classifier cannot be trained; set '
                         'va_reid.view_label_file to label files covering (part of) the training set')
    return SideLabels(table, by='path')
