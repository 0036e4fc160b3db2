"""Idempotent registration of reid_ext's models and datasets into torchreid.

torchreid has no public model-registration API: :func:`register_model` writes into the
module-level dict ``torchreid.reid.models.__model_factory`` (fetched with ``getattr`` to avoid
name mangling). Datasets go through ``torchreid.data.register_image_dataset``, which raises on a
taken name, so the name is checked first. Re-registering the same object (or the same
``module.qualname`` after a reload) is a no-op; a different object under a taken name raises.
"""
import importlib
import warnings
from typing import Callable, Dict

__all__ = ['MODELS', 'DATASETS', 'register_all', 'register_model', 'register_dataset']

#: torchreid model name -> "module:attribute" (a factory taking num_classes, loss, pretrained, ...)
MODELS: Dict[str, str] = {
    'bnneck_tiny': 'reid_ext.models.bnneck_resnet:bnneck_tiny',
    'bnneck_resnet18': 'reid_ext.models.bnneck_resnet:bnneck_resnet18',
    'bnneck_resnet50': 'reid_ext.models.bnneck_resnet:bnneck_resnet50',
    'bnneck_se_resnext101': 'reid_ext.models.bnneck_resnet:bnneck_se_resnext101',
    'va_reid_tiny': 'reid_ext.models.va_reid_net:va_reid_tiny',
    'va_reid_resnet18': 'reid_ext.models.va_reid_net:va_reid_resnet18',
    'va_reid_resnet50': 'reid_ext.models.va_reid_net:va_reid_resnet50',
    'va_reid_se_resnext101': 'reid_ext.models.va_reid_net:va_reid_se_resnext101',
    'cace_net': 'reid_ext.models.cace_net:cace_net',
    'cace_net_tiny': 'reid_ext.models.cace_net:cace_net_tiny',
}
#: torchreid dataset name -> "module:class"
DATASETS: Dict[str, str] = {
    'synth_ped': 'reid_ext.datasets.synth_ped:SynthPed',
    'synth_ped_style1': 'reid_ext.datasets.synth_ped:SynthPedStyle1',
}


def _qualified(obj) -> str:
    return f'{getattr(obj, "__module__", "?")}.{getattr(obj, "__qualname__", repr(obj))}'


def _resolve(spec: str):
    module, attr = spec.split(':')
    return getattr(importlib.import_module(module), attr)


def _put(table: dict, kind: str, name: str, obj, insert: Callable) -> None:
    existing = table.get(name)
    if existing is None:
        insert(name, obj)
    elif existing is obj or _qualified(existing) == _qualified(obj):
        table[name] = obj  # same definition (reload): replace silently
    else:
        raise KeyError(f'torchreid {kind} {name!r} is already registered by {_qualified(existing)}; '
                       f'refusing to replace it with {_qualified(obj)}. Rename one of them.')


def _model_factory() -> dict:
    import torchreid
    return getattr(torchreid.models, '__model_factory')


def _dataset_table() -> dict:
    return getattr(importlib.import_module('torchreid.reid.data.datasets'), '__image_datasets')


def register_model(name: str, factory: Callable) -> None:
    """Add ``factory`` to torchreid's model factory under ``name`` (idempotent)."""
    table = _model_factory()
    _put(table, 'model', name, factory, table.__setitem__)


def register_dataset(name: str, cls: type) -> None:
    """Register an image dataset class with torchreid under ``name`` (idempotent)."""
    import torchreid
    _put(_dataset_table(), 'dataset', name, cls, torchreid.data.register_image_dataset)


def register_all() -> bool:
    """Register everything in :data:`MODELS` and :data:`DATASETS`.

    Returns:
        bool: False (with a warning) when torchreid is not installed; :mod:`reid_ext.core`
        stays usable.
    """
    try:
        import torchreid  # noqa: F401
    except ImportError as e:
        warnings.warn(f'reid_ext: torchreid is not importable ({e}); models and datasets are not '
                      'registered (pip install torchreid==0.2.5)')
        return False
    for name, spec in MODELS.items():
        register_model(name, _resolve(spec))
    for name, spec in DATASETS.items():
        register_dataset(name, _resolve(spec))
    return True
