"""Multi-process pieces of MoCo-style video pretraining: shuffle-BN and a synchronised BatchNorm.

* :func:`batch_shuffle` / :func:`batch_unshuffle` - MoCo's shuffle-BN
  (`He et al., CVPR 2020 <https://arxiv.org/abs/1911.05722>`_, Sec. 3.3): the key
  encoder sees the global batch in a random order, so the BN statistics of a
  rank's keys come from samples of other ranks and cannot leak which key belongs
  to which query. mmpretrain's ``batch_shuffle_ddp`` builds its permutation on
  CUDA; these work on any device and backend (gloo included).
* :class:`SyncBatchNorm` - BN whose batch statistics are summed over all ranks
  with a differentiable all-reduce (``torch.nn.SyncBatchNorm`` refuses CPU
  tensors, so it cannot run under gloo); a plain ``_BatchNorm`` on one process.
"""
from typing import Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ['world_info', 'batch_shuffle', 'batch_unshuffle', 'SyncBatchNorm',
           'convert_sync_batchnorm']


def world_info() -> Tuple[int, int]:
    """(rank, world_size); (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather(x: torch.Tensor) -> torch.Tensor:
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, 0)


@torch.no_grad()
def batch_shuffle(x: torch.Tensor, generator: Optional[torch.Generator] = None
                  ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Gather ``x`` from all ranks, permute it (one permutation drawn on rank 0), keep this rank's slice.

    Args:
        x (Tensor): local batch (B, ...), the same B on every rank.
        generator (torch.Generator, optional): generator of the permutation
            (used on rank 0 only).

    Returns:
        tuple[Tensor, Tensor | None]: the local slice (B, ...) of the shuffled
        global batch and the inverse permutation (world * B,) for
        :func:`batch_unshuffle`; ``(x, None)`` on one process.
    """
    rank, world = world_info()
    if world == 1:
        return x, None
    b = x.shape[0]
    x_all = _gather(x)
    perm = torch.randperm(b * world, generator=generator).to(x.device) if rank == 0 else \
        torch.empty(b * world, dtype=torch.long, device=x.device)
    dist.broadcast(perm, 0)
    inverse = torch.argsort(perm)
    return x_all[perm[rank * b:(rank + 1) * b]], inverse


@torch.no_grad()
def batch_unshuffle(y: torch.Tensor, inverse: Optional[torch.Tensor]) -> torch.Tensor:
    """Undo :func:`batch_shuffle` on an output ``y`` (B, ...) computed from the shuffled slice.

    Args:
        y (Tensor): this rank's outputs in shuffled order, (B, ...).
        inverse (Tensor | None): the inverse permutation :func:`batch_shuffle`
            returned; None (one process) returns ``y``.

    Returns:
        Tensor: (B, ...), row i belongs to this rank's input sample i.
    """
    if inverse is None:
        return y
    rank, _ = world_info()
    b = y.shape[0]
    y_all = _gather(y)
    return y_all[inverse[rank * b:(rank + 1) * b]]


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is again the sum over ranks (every rank's loss depends on it)."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation over the union of the batches of all ranks (any device, any backend).

    Training with an initialised process group of more than one rank: mean and
    (biased) variance come from ``all_reduce`` of per-channel sums, sums of
    squares and counts (differentiable, so gradients flow across ranks as in
    one big batch); the running variance uses the unbiased estimate of the
    global batch. Otherwise it is the plain batch norm of ``nn.BatchNorm{1,2,3}d``.

    Args: as ``nn.BatchNorm3d`` (num_features, eps, momentum, affine,
    track_running_stats). Input (N, C, ...) with at least 2 dims.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f'SyncBatchNorm: expected (N, C, ...) input, got {tuple(x.shape)}')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        _, world = world_info()
        if not (self.training and world > 1):
            return super().forward(x)
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        count = torch.full((1,), x.numel() // c, dtype=x.dtype, device=x.device)
        stats = _AllReduceSum.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None \
                    else self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        shape = (1, c) + (1,) * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``_BatchNorm`` of ``module`` by :class:`SyncBatchNorm` (weights and stats kept).

    Returns:
        nn.Module: ``module`` itself (children replaced in place) or, if
        ``module`` is a BN layer, its replacement.
    """
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        new = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                new.weight.copy_(module.weight)
                new.bias.copy_(module.bias)
            new.weight.requires_grad_(module.weight.requires_grad)
            new.bias.requires_grad_(module.bias.requires_grad)
        if module.track_running_stats:
            new.running_mean.copy_(module.running_mean)
            new.running_var.copy_(module.running_var)
            new.num_batches_tracked.copy_(module.num_batches_tracked)
        new.train(module.training)
        return new.to(next(module.buffers(), torch.empty(0)).device)
    for name, child in module.named_children():
        new = convert_sync_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
    return module
