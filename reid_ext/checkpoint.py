"""Resume checkpoints of reid_ext engines: naming, atomic writing, RNG state, safe loading.

A resume checkpoint ``<save_dir>/checkpoints/ckpt_e<E>_i<I>.pth`` holds the state after ``E``
completed epochs and ``I`` iterations of the next one (``I = 0`` at an epoch boundary). See
:meth:`reid_ext.engines.ReidExtEngine.save_checkpoint` for its contents. Files are written to a
temporary name and renamed, so a crash leaves either the old or the new file; a file damaged
otherwise (copied half-way, disk full) is skipped by :func:`load_latest` with a warning naming it.
"""
import glob
import os
import os.path as osp
import random
import re
import warnings
from typing import List, Optional, Tuple

import numpy as np
import torch

__all__ = ['CKPT_DIR', 'checkpoint_path', 'list_checkpoints', 'save_atomic', 'load_latest',
           'load_file', 'rng_state', 'set_rng_state']

CKPT_DIR = 'checkpoints'
_PATTERN = re.compile(r'ckpt_e(\d+)_i(\d+)\.pth$')


def checkpoint_path(save_dir: str, epoch: int, it: int) -> str:
    return osp.join(save_dir, CKPT_DIR, f'ckpt_e{int(epoch):04d}_i{int(it):07d}.pth')


def list_checkpoints(save_dir: str) -> List[str]:
    """Resume checkpoints under ``save_dir``, oldest first (by epoch, then iteration)."""
    files = []
    for f in glob.glob(osp.join(save_dir, CKPT_DIR, 'ckpt_e*_i*.pth')):
        m = _PATTERN.search(osp.basename(f))
        if m:
            files.append(((int(m.group(1)), int(m.group(2))), f))
    return [f for _, f in sorted(files)]


def save_atomic(obj, path: str) -> None:
    """``torch.save`` to ``path + '.tmp'``, flushed to disk, then renamed over ``path``."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_file(path: str) -> dict:
    """Load a (trusted) checkpoint file written by reid_ext or torchreid, on the CPU."""
    # weights_only=False: our own files hold RNG states (numpy arrays, tuples); trusted input
    return torch.load(path, map_location='cpu', weights_only=False)


def load_latest(save_dir: str) -> Tuple[Optional[str], Optional[dict]]:
    """The newest loadable resume checkpoint under ``save_dir``.

    A file that cannot be read (truncated, corrupt, not a reid_ext checkpoint) is skipped with a
    warning naming it, and the next older one is tried.

    Returns:
        tuple: ``(path, state)``, or ``(None, None)`` when there is none.
    """
    for path in reversed(list_checkpoints(save_dir)):
        try:
            state = load_file(path)
            if not isinstance(state, dict) or 'models' not in state:
                raise ValueError('not a reid_ext resume checkpoint (no "models" entry)')
            return path, state
        except Exception as e:  # noqa: BLE001  (any unreadable file: fall back to an older one)
            warnings.warn(f'skipping checkpoint {path}: it cannot be loaded ({type(e).__name__}: '
                          f'{str(e)[:200]}); trying the previous one')
    return None, None


def rng_state() -> dict:
    """This process's torch (CPU and current CUDA device), numpy and Python RNG states."""
    state = {'torch': torch.get_rng_state(), 'numpy': np.random.get_state(),
             'python': random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])
