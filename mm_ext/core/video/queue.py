"""MoCo memory-queue helpers: DDP gather of keys and wrap-around enqueue."""
import torch
import torch.distributed as dist

__all__ = ['concat_all_gather', 'enqueue_wraparound']


@torch.no_grad()
def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all ranks along dim 0 (rank order); identity on one process.

    Args:
        x (Tensor): shape (B, ...), the same B on every rank (use drop_last).

    Returns:
        Tensor: shape (world_size * B, ...), no gradient.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x.detach()
    x = x.detach().contiguous()
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x)
    return torch.cat(out, 0)


@torch.no_grad()
def enqueue_wraparound(queue: torch.Tensor, ptr: torch.Tensor, keys: torch.Tensor) -> None:
    """Write ``keys`` into the FIFO ``queue`` at ``ptr`` (in place), wrapping modulo K.

    K need not be a multiple of the batch (the release uses K = 3569). If more
    than K keys are given only the last K are kept.

    Args:
        queue (Tensor): shape (K, D), modified in place.
        ptr (Tensor): shape (1,), int64 position of the oldest entry, advanced
            in place by the number of keys modulo K.
        keys (Tensor): shape (M, D).
    """
    k = queue.shape[0]
    if keys.dim() != 2 or keys.shape[1] != queue.shape[1]:
        raise ValueError(f'enqueue: keys must be (M, {queue.shape[1]}), got {tuple(keys.shape)}')
    m = keys.shape[0]
    p = int(ptr.item())
    if m > k:
        p = (p + m - k) % k
        keys = keys[-k:]
        m = k
    idx = (p + torch.arange(m, device=queue.device)) % k
    queue.index_copy_(0, idx, keys.to(queue.dtype))
    ptr.fill_((p + m) % k)
