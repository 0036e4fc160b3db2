"""Every ring member reads the whole training set in its own order (spec B.2 step 1, E.2)."""
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from mmengine.dataset import DefaultSampler  # noqa: F401  (documentation reference)
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

from mm_ext._registry import register


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) % (2**32) for p in parts]).generate_state(1)[0])


@register(DATA_SAMPLERS)
class GraftingSampler(Sampler):
    """Yields, per step, ``[(index, sample_seed)]`` for each local ring member.

    Stream k (member k) is a permutation of the whole dataset drawn from (``seed``, epoch, k), so
    the order of member k is the same whether it runs in one process with the others or alone on
    rank k (no sharding by rank, unlike mmengine's ``DefaultSampler``). ``sample_seed`` seeds the
    data pipeline's random transforms for that sample (see ``GraftingDataset``), which makes the
    augmentation a function of (seed, epoch, member, position) too: resuming and the rank mode
    reproduce the one-process run exactly.

    Args:
        dataset: the training dataset (a ``GraftingDataset``).
        num_streams (int): ring size N (= the model's ``num_nets``).
        shuffle (bool): random order per epoch. Defaults to True.
        seed (int, optional): base seed; None = 0 (the runner passes its seed). Defaults to None.
        shared_order (bool): every member reads stream 0's order and augmentation (needed by DGD,
            whose teacher is evaluated on the same inputs). Defaults to False.
        per_rank (bool, optional): one stream per rank (stream = rank). None = when a process
            group of N > 1 ranks exists. Defaults to None.
    """

    def __init__(self, dataset, num_streams: int, shuffle: bool = True, seed: Optional[int] = None,
                 shared_order: bool = False, per_rank: Optional[bool] = None):
        self.dataset = dataset
        self.num_streams = int(num_streams)
        if self.num_streams < 1:
            raise ValueError(f'GraftingSampler: num_streams must be >= 1, got {num_streams}')
        self.shuffle, self.seed, self.shared_order = shuffle, 0 if seed is None else int(seed), shared_order
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if per_rank is None:
            per_rank = world > 1
        if per_rank:
            if world != self.num_streams:
                raise ValueError(f'GraftingSampler: per_rank needs one rank per stream, got {world} ranks for '
                                 f'num_streams={self.num_streams}')
            self.local = [dist.get_rank()]
        else:
            self.local = list(range(self.num_streams))
        self.epoch = 0

    def _stream(self, k: int) -> Tuple[List[int], List[int]]:
        k = 0 if self.shared_order else k
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(_seed(self.seed, self.epoch, k))
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        rng = np.random.default_rng(_seed(self.seed, self.epoch, k, 1))
        seeds = rng.integers(0, 2**31 - 1, size=n).tolist()
        return order, seeds

    def __iter__(self) -> Iterator[list]:
        streams = [self._stream(k) for k in self.local]
        for i in range(len(self.dataset)):
            yield [(s[0][i], s[1][i]) for s in streams]

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
