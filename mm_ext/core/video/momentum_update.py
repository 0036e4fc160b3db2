"""Momentum (EMA) update of a MoCo key encoder."""
import torch
import torch.nn as nn

__all__ = ['momentum_update']


@torch.no_grad()
def momentum_update(key: nn.Module, query: nn.Module, momentum: float = 0.999,
                    buffers: str = 'own') -> None:
    """``theta_k <- m * theta_k + (1 - m) * theta_q`` for every parameter, in place.

    Note:
        ``momentum`` is the weight of the *old* key value (the paper's m =
        0.999), the opposite of mmengine's EMA convention (0.001).

    Args:
        key (nn.Module): key encoder, same structure as ``query``.
        query (nn.Module): query encoder.
        momentum (float): m in [0, 1]. Defaults to 0.999.
        buffers (str): 'own' keeps the key's own BN statistics (release);
            'copy' copies the query's buffers (mmengine / mmpretrain default).
            Defaults to 'own'.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f'momentum_update: momentum must be in [0, 1], got {momentum}')
    if buffers not in ('own', 'copy'):
        raise ValueError(f"momentum_update: buffers must be 'own' or 'copy', got {buffers!r}")
    kp = list(key.parameters())
    qp = list(query.parameters())
    if len(kp) != len(qp):
        raise ValueError('momentum_update: key and query encoders differ in structure '
                         f'({len(kp)} vs {len(qp)} parameters)')
    torch._foreach_mul_(kp, momentum)
    torch._foreach_add_(kp, [q.detach() for q in qp], alpha=1.0 - momentum)
    if buffers == 'copy':
        for bk, bq in zip(key.buffers(), query.buffers()):
            bk.copy_(bq)
