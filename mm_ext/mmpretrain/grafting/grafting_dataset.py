"""Dataset wrapper that loads one sample per ring member (see ``GraftingSampler``)."""
import random
from typing import Optional

import numpy as np
from mmpretrain.registry import DATASETS

from mm_ext._registry import register


@register(DATASETS)
class GraftingDataset:
    """Wraps a dataset config; ``ds[[(i0, s0), (i1, s1)]]`` -> ``{'nets': [sample_i0, sample_i1]}``.

    Each sample is produced with Python's and numpy's global random generators seeded from its
    ``sample_seed`` (the states are restored afterwards), so random transforms (``RandomCrop``,
    ``RandomFlip``, ...) depend only on the sampler's stream, not on the loading order or worker.
    Members with the same (index, seed) share one loaded sample. A plain integer index returns the
    plain sample.

    Args:
        dataset (dict): the wrapped dataset's config (or a built dataset).
    """

    def __init__(self, dataset):
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset

    @property
    def metainfo(self):
        return self.dataset.metainfo

    def full_init(self):
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def __len__(self) -> int:
        return len(self.dataset)

    def _load(self, idx: int, seed: Optional[int]):
        if seed is None:
            return self.dataset[idx]
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            np.random.seed(seed)
            random.seed(seed)
            return self.dataset[idx]
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)

    def __getitem__(self, idx):
        if isinstance(idx, (list, tuple)):
            cache, out = {}, []
            for item in idx:
                i, s = (item, None) if isinstance(item, int) else (int(item[0]), item[1])
                if (i, s) not in cache:
                    cache[(i, s)] = self._load(i, s)
                out.append(cache[(i, s)])
            return {'nets': out}
        return self.dataset[idx]
