"""Capture and restore the process-wide random generators (Python, numpy, torch CPU and CUDA).

The captured state holds only plain Python values and tensors, so it round-trips through
``torch.save`` and the weights-only checkpoint loader of :mod:`mm_ext._compat.checkpoint`.
"""
import random
from contextlib import contextmanager
from typing import Any, Dict

import numpy as np
import torch

__all__ = ['capture_rng_state', 'restore_rng_state', 'preserved_rng_state']


def capture_rng_state() -> Dict[str, Any]:
    """The current state of every global generator this process draws from.

    Returns:
        dict: ``python`` (``random.getstate()``), ``numpy`` (legacy ``RandomState``
        tuple with the key as a list), ``torch`` (CPU ByteTensor) and, when CUDA has been
        initialised, ``cuda`` (one ByteTensor per device).
    """
    name, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    state = dict(python=random.getstate(),
                 numpy=(str(name), [int(k) for k in key], int(pos), int(has_gauss), float(gauss)),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Set the generators to a state from :func:`capture_rng_state`.

    CUDA states are restored when present and CUDA is available (all devices when the
    device count matches, else the current device's).
    """
    version, internal, gauss = state['python']
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    name, key, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(torch.as_tensor(state['torch'], dtype=torch.uint8).cpu())
    cuda = state.get('cuda')
    if cuda and torch.cuda.is_available():
        cuda = [torch.as_tensor(s, dtype=torch.uint8).cpu() for s in cuda]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            torch.cuda.set_rng_state(cuda[min(torch.cuda.current_device(), len(cuda) - 1)])


@contextmanager
def preserved_rng_state():
    """Run a block without moving any global generator (state restored on exit)."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)
