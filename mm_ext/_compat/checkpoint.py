"""Loading mmengine and torchreid checkpoints on torch >= 2.6 without turning safety off.

torch >= 2.6 loads with ``weights_only=True`` by default and refuses full
mmengine checkpoints (``message_hub`` holds ``HistoryBuffer`` objects, numpy
arrays and scalars; a ``HistoryBuffer`` pickles its statistics methods through
``getattr``) and torchreid checkpoints (``rank1`` is a numpy scalar).

The fix keeps torch's weights-only unpickler and extends it with an explicit
allow-list (:data:`ALLOWED_GLOBALS`). ``builtins.getattr`` is *not* allowed;
it is mapped to :func:`restricted_getattr`, which only resolves public methods
of allow-listed classes. Anything else in a file (``os.system``,
``subprocess.Popen``, ...) is refused with an error naming the global.

The fix never sets ``weights_only=False`` globally nor
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``; it replaces exactly two call sites:
mmengine's local checkpoint loader (``CheckpointLoader`` scheme ``''``, used by
``load_from``, ``--resume`` and ``load_checkpoint``) and torchreid's
``load_checkpoint``.
"""
import pickle
import warnings
from typing import Any, Iterable, List

import torch

from .post_import import when_imported

__all__ = ['safe_load', 'allow_globals', 'ALLOWED_GLOBALS', 'restricted_getattr', 'apply']

_GETATTR_OWNERS: List[type] = []


def restricted_getattr(obj, name):
    """``getattr`` limited to public callables of allow-listed classes."""
    if (any(obj is owner for owner in _GETATTR_OWNERS) and isinstance(name, str)
            and not name.startswith('_') and callable(getattr(obj, name, None))):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'mm_ext safe loader: refused getattr({obj!r}, {name!r}) while unpickling; only public '
        f'methods of {[c.__name__ for c in _GETATTR_OWNERS]} may be looked up')


def _numpy_globals() -> list:
    import numpy as np
    out = [np.ndarray, np.dtype]
    try:  # numpy >= 2
        from numpy._core import multiarray as ma
        out += [(ma._reconstruct, 'numpy._core.multiarray._reconstruct'),
                (ma.scalar, 'numpy._core.multiarray.scalar'),
                (ma._reconstruct, 'numpy.core.multiarray._reconstruct'),
                (ma.scalar, 'numpy.core.multiarray.scalar')]
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray as ma
        out += [ma._reconstruct, ma.scalar]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    import codecs
    out.append(codecs.encode)
    return out


def _mmengine_globals() -> list:
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
    except ImportError:
        return []
    if HistoryBuffer not in _GETATTR_OWNERS:
        _GETATTR_OWNERS.append(HistoryBuffer)
    return [HistoryBuffer]


_extra: list = []


def allow_globals(objs: Iterable[Any]) -> None:
    """Trust more classes/functions in every checkpoint loaded by :func:`safe_load`.

    Args:
        objs: classes/functions, or ``(obj, 'module.qualname')`` pairs as in
            :func:`torch.serialization.add_safe_globals`.
    """
    _extra.extend(objs)


def ALLOWED_GLOBALS() -> list:  # noqa: N802 - reads like the constant it stands for
    """The current allow-list (numpy, mmengine ``HistoryBuffer``, extras, getattr)."""
    return (_numpy_globals() + _mmengine_globals() + list(_extra)
            + [(restricted_getattr, 'builtins.getattr')])


def _reason(err: Exception) -> str:
    """The informative line of torch's long weights-only message."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for key in ('mm_ext safe loader', 'nsupported GLOBAL', 'nsupported global', 'Unsupported operand',
                'WeightsUnpickler error:'):
        for ln in lines:
            if key in ln and ln != 'WeightsUnpickler error:':
                return ln
    return lines[-1] if lines else repr(err)


def safe_load(f, map_location=None, **kwargs):
    """``torch.load`` with weights-only unpickling plus the allow-list.

    Args:
        f (str | PathLike | file): the checkpoint.
        map_location: as for :func:`torch.load`.

    Raises:
        pickle.UnpicklingError: the file needs a global outside the
            allow-list; the message names it and the fix.
    """
    kwargs.pop('weights_only', None)
    with torch.serialization.safe_globals(ALLOWED_GLOBALS()):
        try:
            return torch.load(f, map_location=map_location, weights_only=True, **kwargs)
        except pickle.UnpicklingError as e:
            raise pickle.UnpicklingError(
                f'mm_ext safe loader refused {f!r}: {_reason(e)}\n'
                'If you trust this file and the global it names, allow exactly that class with '
                'mm_ext._compat.checkpoint.allow_globals([TheClass]).') from e


def _patch_mmengine(module) -> None:
    """Route mmengine's local-file checkpoint scheme through :func:`safe_load`."""
    import os.path as osp

    from mmengine.fileio import get_file_backend

    def load_from_local(filename, map_location):
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        return safe_load(filename, map_location=map_location)

    def load_from_backend(filename, map_location):
        import io
        backend = get_file_backend(filename)
        with io.BytesIO(backend.get(filename)) as buf:
            return safe_load(buf, map_location=map_location)

    load_from_local.__mm_ext_safe__ = True
    loader = module.CheckpointLoader
    current = loader._schemes.get('')
    if getattr(current, '__mm_ext_safe__', False):
        return
    module.load_from_local = load_from_local
    loader.register_scheme('', load_from_local, force=True)
    for prefix in ('s3://', 'petrel://'):
        if prefix in loader._schemes:
            load_from_backend.__mm_ext_safe__ = True
            loader.register_scheme(prefix, load_from_backend, force=True)


def _patch_torchreid(module) -> None:
    """Replace torchreid's ``load_checkpoint`` (torchtools and the utils namespace)."""
    import os.path as osp

    if getattr(module.load_checkpoint, '__mm_ext_safe__', False):
        return

    def load_checkpoint(fpath):
        if fpath is None:
            raise ValueError('File path is None')
        fpath = osp.abspath(osp.expanduser(fpath))
        if not osp.exists(fpath):
            raise FileNotFoundError(f'File is not found at "{fpath}"')
        map_location = None if torch.cuda.is_available() else 'cpu'
        return safe_load(fpath, map_location=map_location)

    load_checkpoint.__mm_ext_safe__ = True
    load_checkpoint.__doc__ = module.load_checkpoint.__doc__
    module.load_checkpoint = load_checkpoint
    import sys
    utils = sys.modules.get('torchreid.reid.utils')
    if utils is not None and hasattr(utils, 'load_checkpoint'):
        utils.load_checkpoint = load_checkpoint


def apply() -> None:
    """Install the patches (lazily: each when its host module is imported)."""
    when_imported('mmengine.runner.checkpoint', _patch_mmengine)
    # torchreid.reid.utils star-imports torchtools after this patch ran, so it gets the safe
    # function too; if both were imported earlier, _patch_torchreid updates utils itself.
    when_imported('torchreid.reid.utils.torchtools', _patch_torchreid)
