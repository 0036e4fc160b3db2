"""Idempotent registration into a host's mmengine registry.

mmengine raises ``KeyError`` when a name is registered twice, which breaks
``importlib.reload`` of an adapter module and double imports through
``custom_imports``.  :func:`register` treats the *same* class (same object, or
same ``module.qualname`` after a reload) as a no-op/replacement, and still
raises for a *different* class under an existing name.
"""
from typing import Callable, Optional

__all__ = ['register']


def _qualified(obj) -> str:
    return f'{getattr(obj, "__module__", "?")}.{getattr(obj, "__qualname__", repr(obj))}'


def register(registry, name: Optional[str] = None) -> Callable:
    """Class/function decorator: ``@register(MODELS)``.

    Args:
        registry (mmengine.registry.Registry): the host's child registry
            (e.g. ``mmdet.registry.MODELS``), never mmengine's root.
        name (str, optional): registered name. Defaults to the class name.

    Raises:
        KeyError: another class is already registered under the name; the
            message names both.
    """

    def _do(obj):
        key = name or obj.__name__
        existing = registry._module_dict.get(key)
        if existing is None:
            registry.register_module(name=key, module=obj)
        elif existing is obj or _qualified(existing) == _qualified(obj):
            registry._module_dict[key] = obj  # reload of the same definition
        else:
            raise KeyError(
                f'{key!r} is already registered in registry {registry.name!r} by '
                f'{_qualified(existing)}; refusing to replace it with {_qualified(obj)}. '
                'Rename one of them.')
        return obj

    return _do
