"""Find a checkpoint to resume from, skipping truncated or corrupt ones with a named warning.

mmengine's ``--resume`` (``resume=True, load_from=None``) reads ``work_dir/last_checkpoint`` and
fails with a raw unpickling/zip error when that file was cut short (a kill while writing, a full
disk). :func:`find_resume_checkpoint` checks the candidates newest first (the ``last_checkpoint``
target and every ``epoch_N.pth`` / ``iter_N.pth``) and returns the first intact one.
"""
import os
import os.path as osp
import re
import warnings
import zipfile
from typing import List, Optional

__all__ = ['CheckpointFallbackWarning', 'checkpoint_problem', 'resume_candidates', 'find_resume_checkpoint']

_STEP = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


class CheckpointFallbackWarning(UserWarning):
    """A resume candidate was unreadable and an older checkpoint is used instead."""


def checkpoint_problem(path: str, full: bool = True) -> Optional[str]:
    """Why ``path`` is not a usable mmengine checkpoint, or None if it is.

    Checks, in order: the file exists and is not empty; it is a complete zip archive (torch's
    format: a truncated file loses its central directory); every member's CRC matches; and
    (``full=True``) it loads with the project's weights-only loader and holds ``meta`` and
    ``state_dict``.
    """
    if not osp.isfile(path):
        return 'file does not exist'
    size = osp.getsize(path)
    if size == 0:
        return 'file is empty (0 bytes)'
    if not zipfile.is_zipfile(path):
        return f'not a complete torch zip archive ({size} bytes; truncated while being written?)'
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        return f'damaged zip archive ({type(e).__name__}: {e})'
    if bad is not None:
        return f'CRC mismatch in archive member {bad!r} (corrupt data)'
    if not full:
        return None
    from mm_ext._compat.checkpoint import safe_load
    try:
        ckpt = safe_load(path, map_location='cpu')
    except Exception as e:  # noqa: BLE001 - any failure to load is the reason
        first = str(e).strip().splitlines()[0] if str(e).strip() else ''
        return f'cannot be loaded ({type(e).__name__}: {first})'
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt or 'meta' not in ckpt:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        return f'not an mmengine training checkpoint (no meta/state_dict; has {keys})'
    return None


def resume_candidates(work_dir: str) -> List[str]:
    """Checkpoints in ``work_dir`` newest first: ``epoch_N``/``iter_N`` by N, plus the pointer target."""
    found = []
    if osp.isdir(work_dir):
        for name in os.listdir(work_dir):
            m = _STEP.match(name)
            if m:
                found.append((int(m.group(2)), osp.join(work_dir, name)))
    ordered = [p for _, p in sorted(found, key=lambda t: -t[0])]
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            target = f.read().strip()
        if target:
            if not osp.isabs(target) and not osp.exists(target):
                target = osp.join(work_dir, osp.basename(target))
            same = [p for p in ordered if osp.abspath(p) == osp.abspath(target)]
            if not same:
                ordered.insert(0, target)  # e.g. a best_*.pth or a file elsewhere
    return ordered


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The newest intact checkpoint in ``work_dir`` (None if there is none).

    Each skipped candidate is named in a :class:`CheckpointFallbackWarning` with the reason.

    Raises:
        RuntimeError: there are checkpoints but none is usable (each named with its reason).
    """
    skipped = []
    for path in resume_candidates(work_dir):
        why = checkpoint_problem(path)
        if why is None:
            if skipped:
                warnings.warn(
                    f'resume: skipped {len(skipped)} unusable checkpoint(s): '
                    + '; '.join(f'{p}: {w}' for p, w in skipped) + f'. Resuming from {path} instead.',
                    CheckpointFallbackWarning, stacklevel=2)
            return path
        skipped.append((path, why))
    if skipped:
        raise RuntimeError(
            f'resume: no usable checkpoint in {work_dir}: '
            + '; '.join(f'{p}: {w}' for p, w in skipped)
            + '. Move the damaged files away to train from scratch, or pass --resume FILE.')
    return None
