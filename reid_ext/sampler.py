"""Deterministic, distributed, resumable training batches and sharded evaluation batches.

Training (:class:`DistributedIdentityBatchSampler`, :class:`DistributedRandomBatchSampler`):
one permutation per epoch, a pure function of ``(seed, epoch)``, shared by all ranks. Each step
takes one *global* batch of ``world_size * batch_size`` images and gives rank ``r`` its ``r``-th
slice, so every rank runs the same number of iterations and, with the identity sampler, the
ranks' identities in one step are disjoint (P x K per rank, ``world_size * P`` identities per
step). ``set_epoch(epoch, start_iter)`` restarts inside an epoch after a resume.

Every sample index comes with its own seed (drawn from the same per-epoch generator);
:class:`SeededDataset` seeds torch / numpy / random from it around the transform, so data
augmentation depends on ``(seed, epoch, position)`` only: not on the number of loader workers,
not on the process RNG, and not on where training was interrupted.

Evaluation (:class:`ShardedBatchSampler`): the single-process batches of a sequential loader,
dealt round-robin to the ranks. Every batch is computed exactly as in one process, so gathered
features (see :func:`reid_ext.dist.gather_batches`) are bit-identical to one process's.
"""
import random
from typing import Iterator, List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

__all__ = ['DistributedIdentityBatchSampler', 'DistributedRandomBatchSampler',
           'ShardedBatchSampler', 'SeededDataset', 'identity_batches']


def _epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(epoch)])))


def identity_batches(pids: Sequence[int], num_pids: int, num_instances: int,
                     rng: np.random.Generator) -> List[List[int]]:
    """P x K batches of one epoch (torchreid's ``RandomIdentitySampler`` scheme).

    Each identity's indices are shuffled, padded by drawing with replacement up to
    ``num_instances`` when it has fewer, and cut into groups of ``num_instances``; while at least
    ``num_pids`` identities have groups left, a batch takes one group from each of
    ``num_pids`` identities drawn at random among them.

    Args:
        pids (Sequence[int]): identity of each dataset item.
        num_pids (int): identities per batch (P).
        num_instances (int): images per identity (K).
        rng (Generator): the epoch's random generator.

    Returns:
        list: batches, each a list of ``num_pids * num_instances`` dataset indices.
    """
    by_pid = {}
    for i, p in enumerate(pids):
        by_pid.setdefault(int(p), []).append(i)
    groups = {}
    for p in sorted(by_pid):
        idx = np.asarray(by_pid[p])
        if len(idx) < num_instances:
            idx = rng.choice(idx, size=num_instances, replace=True)
        idx = rng.permutation(idx)
        n = len(idx) // num_instances * num_instances
        groups[p] = [list(map(int, idx[s:s + num_instances])) for s in range(0, n, num_instances)]
    batches = []
    avail = [p for p in sorted(groups) if groups[p]]
    while len(avail) >= num_pids:
        chosen = rng.choice(len(avail), size=num_pids, replace=False)
        batch = []
        for c in chosen:
            batch.extend(groups[avail[c]].pop())
        batches.append(batch)
        avail = [p for p in avail if groups[p]]
    return batches


class _EpochBatchSampler(Sampler):
    """Base: global batches of an epoch -> this rank's slices, keyed ``(index, sample_seed)``."""

    def __init__(self, batch_size: int, rank: int, world_size: int, seed: int):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f'need 0 <= rank < world_size, got rank {rank}, world_size {world_size}')
        self.batch_size, self.rank, self.world_size, self.seed = batch_size, rank, world_size, seed
        self.epoch, self.start_iter = 0, 0
        self._batches = None

    def _global_batches(self, rng: np.random.Generator) -> List[List[int]]:
        raise NotImplementedError

    def set_epoch(self, epoch: int, start_iter: int = 0) -> None:
        """Select the epoch's permutation; iteration starts at ``start_iter`` (resume)."""
        self.epoch, self.start_iter = int(epoch), int(start_iter)
        rng = _epoch_rng(self.seed, self.epoch)
        glob = self._global_batches(rng)
        seeds = rng.integers(0, 2 ** 62, size=(len(glob), self.world_size * self.batch_size))
        b = self.batch_size
        self._batches = [list(zip(g[self.rank * b:(self.rank + 1) * b],
                                  map(int, s[self.rank * b:(self.rank + 1) * b])))
                         for g, s in zip(glob, seeds)]
        if self.start_iter > len(self._batches):
            raise ValueError(f'start_iter {start_iter} > {len(self._batches)} iterations of epoch '
                             f'{epoch}')

    def num_iters(self) -> int:
        """Iterations of the whole epoch (also counting the ones skipped by ``start_iter``)."""
        if self._batches is None:
            self.set_epoch(self.epoch, self.start_iter)
        return len(self._batches)

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        if self._batches is None:
            self.set_epoch(self.epoch, self.start_iter)
        yield from self._batches[self.start_iter:]

    def __len__(self) -> int:
        return self.num_iters() - self.start_iter


class DistributedIdentityBatchSampler(_EpochBatchSampler):
    """P x K batches per rank from one shared per-epoch identity permutation.

    Args:
        pids (Sequence[int]): identity of each dataset item.
        batch_size (int): images per rank and step (P x K; torchreid's ``batch_size``).
        num_instances (int): K, images per identity.
        rank (int): this process. Defaults to 0.
        world_size (int): processes. Defaults to 1.
        seed (int): base seed; epoch ``e`` uses ``(seed, e)``. Defaults to 0.
    """

    def __init__(self, pids: Sequence[int], batch_size: int, num_instances: int, rank: int = 0,
                 world_size: int = 1, seed: int = 0):
        if num_instances < 1 or batch_size % num_instances:
            raise ValueError(f'train.batch_size ({batch_size}) must be a multiple of '
                             f'sampler.num_instances ({num_instances})')
        super().__init__(batch_size, rank, world_size, seed)
        self.pids = [int(p) for p in pids]
        self.num_instances = num_instances
        self.num_pids = batch_size // num_instances
        n_ids = len(set(self.pids))
        if n_ids < self.num_pids * world_size:
            raise ValueError(f'{n_ids} training identities cannot fill one step of {world_size} '
                             f'rank(s) x {self.num_pids} identities (batch_size {batch_size} / '
                             f'num_instances {num_instances}); lower train.batch_size')

    def _global_batches(self, rng):
        return identity_batches(self.pids, self.num_pids * self.world_size, self.num_instances, rng)


class DistributedRandomBatchSampler(_EpochBatchSampler):
    """Shuffled batches (torchreid's ``RandomSampler`` with ``drop_last``) split over ranks.

    Args:
        num_samples (int): dataset size.
        batch_size (int): images per rank and step.
        rank (int): Defaults to 0. world_size (int): Defaults to 1. seed (int): Defaults to 0.
    """

    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0):
        super().__init__(batch_size, rank, world_size, seed)
        self.num_samples = num_samples
        if num_samples < batch_size * world_size:
            raise ValueError(f'{num_samples} training images cannot fill one step of {world_size} '
                             f'rank(s) x batch_size {batch_size}')

    def _global_batches(self, rng):
        perm = rng.permutation(self.num_samples)
        g = self.batch_size * self.world_size
        return [list(map(int, perm[s:s + g])) for s in range(0, len(perm) - g + 1, g)]


class ShardedBatchSampler(Sampler):
    """Batches ``[0, bs), [bs, 2 bs), ...`` of a sequential loader; rank ``r`` gets ``r::world``.

    Yields lists of dataset indices; :attr:`batch_ids` are this rank's batch numbers.

    Args:
        num_samples (int): dataset size. batch_size (int): images per batch.
        rank (int): Defaults to 0. world_size (int): Defaults to 1.
    """

    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.num_samples, self.batch_size = num_samples, batch_size
        self.num_batches = (num_samples + batch_size - 1) // batch_size
        self.batch_ids = list(range(rank, self.num_batches, world_size))

    def __iter__(self):
        for b in self.batch_ids:
            yield list(range(b * self.batch_size, min((b + 1) * self.batch_size, self.num_samples)))

    def __len__(self):
        return len(self.batch_ids)


class SeededDataset(Dataset):
    """Wraps a map-style dataset so that item ``(index, seed)`` is drawn under its own seed.

    torch's, numpy's and Python's global generators are seeded from ``seed`` for the duration of
    ``dataset[index]`` and restored afterwards, so the transform's random choices are a function
    of the key alone. Plain integer keys pass through unchanged.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getattr__(self, name):  # data, train, num_train_pids, ... of the wrapped dataset
        if name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % (2 ** 32))
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
