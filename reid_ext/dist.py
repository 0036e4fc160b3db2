"""Process-group helpers of the re-ID side (torchrun / slurm; nccl on GPU, gloo on CPU).

One process per device. :func:`init_distributed` reads torchrun's variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) or slurm's (``SLURM_PROCID``,
``SLURM_NTASKS``, ``SLURM_LOCALID``; the master address from ``MASTER_ADDR`` or the first node
of ``SLURM_NODELIST``). Without them everything runs in one process and every helper here is a
no-op.
"""
import os
import subprocess
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist

__all__ = ['init_distributed', 'is_distributed', 'get_rank', 'get_world_size', 'is_main_process',
           'barrier', 'all_gather_object', 'broadcast_object', 'broadcast_buffers', 'gather_batches', 'unwrap_model',
           'wrap_ddp', 'convert_sync_bn']


def first_host(nodelist: str) -> str:
    """First host of a slurm node list: ``node[03-05,9],gpu1`` -> ``node03``."""
    head = nodelist.split(',')[0] if '[' not in nodelist.split(',')[0] else nodelist
    if '[' not in head:
        return head
    prefix, rest = head.split('[', 1)
    first = rest.split(']')[0].split(',')[0].split('-')[0]
    return prefix + first


def _slurm_env() -> None:
    if 'SLURM_PROCID' not in os.environ or 'RANK' in os.environ:
        return
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ.get('SLURM_NODELIST', '127.0.0.1')
        try:
            first = subprocess.check_output(['scontrol', 'show', 'hostnames', nodes],
                                            text=True).split()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            first = first_host(nodes)
        os.environ['MASTER_ADDR'] = first
    os.environ.setdefault('MASTER_PORT', '29500')


def init_distributed(use_gpu: bool) -> bool:
    """Join the process group described by the environment, if any.

    Args:
        use_gpu (bool): nccl and ``cuda:LOCAL_RANK`` when True, gloo on CPU otherwise.

    Returns:
        bool: True when running with more than one process.
    """
    _slurm_env()
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return False
    missing = [k for k in ('RANK', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise RuntimeError(f'WORLD_SIZE={world} but {missing} are not set: start the tool with '
                           'tools/reid_dist_train.sh (torchrun) or tools/slurm_train.sh (srun)')
    if use_gpu:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', '0')))
    dist.init_process_group(backend='nccl' if use_gpu else 'gloo')
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_object(obj: Any) -> List[Any]:
    """Every rank's ``obj`` (a list indexed by rank); ``[obj]`` in one process."""
    if not is_distributed():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _cat(values: Sequence[Any]):
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(values)
    if isinstance(first, np.ndarray):
        return np.concatenate(values)
    out = []
    for v in values:
        out.extend(v)
    return out


def gather_batches(batches: Sequence[Tuple[int, Dict[str, Any]]]) -> Dict[str, Any]:
    """Concatenate per-batch outputs of all ranks in batch order.

    Args:
        batches (Sequence[tuple]): this rank's ``(batch_id, outputs)``; ``outputs`` maps a name to
            a CPU tensor, an ndarray or a list, batch-major.

    Returns:
        dict: name -> concatenation over all batches of all ranks, ordered by ``batch_id``.
    """
    everything = [b for part in all_gather_object(list(batches)) for b in part]
    everything.sort(key=lambda b: b[0])
    ids = [b[0] for b in everything]
    if len(set(ids)) != len(ids):
        raise RuntimeError(f'gather_batches: duplicate batch ids {ids}')
    if not everything:
        return {}
    return {k: _cat([b[1][k] for b in everything]) for k in everything[0][1]}


def broadcast_buffers(model: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics, ...) to every rank.

    DDP keeps parameters equal but each rank updates its own running statistics after the
    broadcast at the start of a forward; evaluation and checkpoints must use one set.
    """
    if not is_distributed():
        return
    for b in unwrap_model(model).buffers():
        dist.broadcast(b.data, src=src)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside ``DistributedDataParallel`` / ``DataParallel`` wrappers."""
    while isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        model = model.module
    return model


def convert_sync_bn(model: torch.nn.Module) -> torch.nn.Module:
    """BatchNorm -> SyncBatchNorm (same parameter objects, so optimisers stay valid)."""
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


#: default keyword arguments of every ``DistributedDataParallel`` made by :func:`wrap_ddp`
#: (``apis.run`` sets ``find_unused_parameters`` from ``train.find_unused_parameters``)
DDP_KWARGS: Dict[str, Any] = {}


def wrap_ddp(model: torch.nn.Module, use_gpu: bool, **kwargs) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when distributed and the model has trainable parameters.

    Frozen helper models (no parameter with ``requires_grad``) and single-process runs are
    returned unchanged, as is a model that is already wrapped.
    """
    if not is_distributed() or isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model
    if not any(p.requires_grad for p in model.parameters()):
        return model
    kwargs = {**DDP_KWARGS, **kwargs}
    if use_gpu:
        dev = torch.cuda.current_device()
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev], output_device=dev,
                                                         **kwargs)
    return torch.nn.parallel.DistributedDataParallel(model, **kwargs)
