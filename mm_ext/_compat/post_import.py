"""Run a callback right after a module is imported (or now, if it already is).

Lets the compat fixes patch a host lazily, so ``import mm_ext`` imports no host.
"""
import importlib.abc
import importlib.util
import sys
import threading
from typing import Callable, Dict, List

_callbacks: Dict[str, List[Callable]] = {}
_lock = threading.RLock()


class _Finder(importlib.abc.MetaPathFinder):

    def find_spec(self, fullname, path, target=None):
        if fullname not in _callbacks:
            return None
        # find the real spec with the other finders, then wrap its loader
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, 'exec_module', None)
        if exec_module is None:
            return None

        class _Loader(importlib.abc.Loader):

            def create_module(self, spec_):
                return loader.create_module(spec_)

            def exec_module(self, module):
                exec_module(module)
                _run(fullname, module)

        spec.loader = _Loader()
        return spec


_finder = _Finder()


def _run(name, module):
    with _lock:
        cbs = _callbacks.pop(name, [])
    for cb in cbs:
        cb(module)


def when_imported(name: str, callback: Callable) -> None:
    """Call ``callback(module)`` once ``name`` is imported (immediately if it is)."""
    with _lock:
        if name in sys.modules and sys.modules[name] is not None:
            mod = sys.modules[name]
        else:
            _callbacks.setdefault(name, []).append(callback)
            if _finder not in sys.meta_path:
                sys.meta_path.insert(0, _finder)
            return
    callback(mod)
