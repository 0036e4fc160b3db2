"""In-memory ring exchange of a state dict between ranks (torch.distributed; no files, no polling)."""
from typing import Dict, Mapping, Optional

import torch
import torch.distributed as dist


def ring_exchange(state: Mapping[str, torch.Tensor], group: Optional[object] = None) -> Dict[str, torch.Tensor]:
    """Send ``state`` to rank r+1 and receive rank r-1's state (ring, pull from the predecessor).

    Tensors are packed into one flat buffer per dtype, so an exchange is one send and one
    receive per dtype. Every rank must hold the same keys, shapes and dtypes (same architecture).

    Args:
        state (Mapping[str, Tensor]): this rank's tensors (any device the backend supports).
        group: process group. Defaults to the default group.

    Returns:
        dict[str, Tensor]: the predecessor's tensors (new buffers); a copy of ``state`` on one rank.
    """
    world = dist.get_world_size(group)
    if world == 1:
        return {k: v.detach().clone() for k, v in state.items()}
    rank = dist.get_rank(group)
    dst, src = (rank + 1) % world, (rank - 1) % world
    if group is not None:
        dst, src = dist.get_global_rank(group, dst), dist.get_global_rank(group, src)
    out: Dict[str, torch.Tensor] = {}
    by_dtype: Dict[torch.dtype, list] = {}
    for k, v in state.items():
        by_dtype.setdefault(v.dtype, []).append(k)
    for dtype in sorted(by_dtype, key=str):
        keys = by_dtype[dtype]
        flat = torch.cat([state[k].detach().reshape(-1) for k in keys])
        buf = torch.empty_like(flat)
        reqs = [dist.isend(flat, dst, group=group), dist.irecv(buf, src, group=group)]
        for r in reqs:
            r.wait()
        pos = 0
        for k in keys:
            n = state[k].numel()
            out[k] = buf[pos:pos + n].view_as(state[k])
            pos += n
    return {k: out[k] for k in state}
