"""Build-on-first-use for the small plain-C CPU kernels of the core (NMS, stripe conv).

A kernel is one C source (plus the headers it includes) with no Python or torch headers,
compiled with the system C compiler (``$CC``, else ``cc`` / ``gcc`` / ``clang``) into a shared
library the first time it is needed (well under a second), cached under
``$MM_EXT_CACHE/kernels`` (default ``~/.cache/mm-ext/kernels``) with a hash of the sources,
the flags and a caller-given tag in the file name (an edited kernel is rebuilt; a
``-march=native`` build passes the CPU as the tag), written to a temporary name and renamed
(concurrent processes never load a half-written file), and loaded with :mod:`ctypes`.

Each kernel can be switched off with its environment variable (``0``/``false``/``no``/``off``).
When no compiler is found or the build fails, :func:`load_library` warns once and returns None,
and the caller runs its torch/numpy path instead.
"""
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

__all__ = ['load_library', 'kernel_enabled', 'cache_dir']

_lock = threading.Lock()
_loaded: Dict[str, Optional[ctypes.CDLL]] = {}  # name -> library (None: tried and failed)


def kernel_enabled(env_var: str) -> bool:
    """Whether ``env_var`` allows the kernel (unset, or anything but ``0``/``false``/``no``/``off``)."""
    return os.environ.get(env_var, '1').strip().lower() not in ('0', 'false', 'no', 'off')


def cache_dir() -> Path:
    """``$MM_EXT_CACHE/kernels`` (default ``~/.cache/mm-ext/kernels``)."""
    root = os.environ.get('MM_EXT_CACHE') or os.path.join(os.path.expanduser('~'), '.cache', 'mm-ext')
    return Path(root) / 'kernels'


def _build(source: Path, cflags: Sequence[str], target: Path) -> None:
    cc = os.environ.get('CC') or shutil.which('cc') or shutil.which('gcc') or shutil.which('clang')
    if not cc:
        raise RuntimeError('no C compiler found (set CC, or install gcc)')
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.stem + '.', suffix='.tmp', dir=target.parent)
    os.close(fd)
    try:
        cmd = [cc, *cflags, '-o', tmp, str(source), '-lm']
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            raise RuntimeError(f'{" ".join(cmd)} failed:\n{res.stderr[-2000:]}')
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_library(name: str, source: Path, cflags: Sequence[str], env_var: str,
                 setup: Callable[[ctypes.CDLL], None], headers: Sequence[Path] = (),
                 tag: str = '') -> Optional[ctypes.CDLL]:
    """The kernel library ``name``, built from ``source`` (+ ``headers``) on first use.

    Args:
        name (str): file-name stem and cache key (e.g. ``'noh_nms'``).
        source (Path): the C file to compile.
        cflags (Sequence[str]): compiler flags (``-shared -fPIC`` included by the caller).
        env_var (str): the variable that switches the kernel off.
        setup (callable): ``setup(lib)`` sets argtypes/restypes and checks the kernel's version
            (raise to refuse the library: it then counts as unavailable).
        headers (Sequence[Path]): files the source includes (part of the cache key).
        tag (str): more for the cache key (e.g. the CPU of a ``-march=native`` build).

    Returns:
        ctypes.CDLL | None: None when switched off, or when it cannot be built (warned once).
    """
    if not kernel_enabled(env_var):
        return None
    if name in _loaded:
        return _loaded[name]
    with _lock:
        if name in _loaded:
            return _loaded[name]
        lib = None
        try:
            h = hashlib.sha1()
            for f in (source, *headers):
                h.update(Path(f).read_bytes())
            h.update(' '.join(cflags).encode() + b'|' + tag.encode())
            target = cache_dir() / f'{name}-{h.hexdigest()[:16]}-{sys.platform}-{platform.machine()}.so'
            if not target.exists():
                _build(Path(source), cflags, target)
            lib = ctypes.CDLL(str(target))
            setup(lib)
        except Exception as e:  # no compiler, read-only cache, version mismatch, ...
            warnings.warn(f'mm_ext: the compiled CPU kernel {name!r} is unavailable ({e}); using the '
                          f'torch/numpy path instead (same results, slower). Set {env_var}=0 to silence this.',
                          RuntimeWarning, stacklevel=3)
            lib = None
        _loaded[name] = lib
    return lib
