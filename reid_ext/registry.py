"""Engine registry of reid_ext: a method adds its engine and its YAML node without touching apis.

A method module (inside or outside ``reid_ext``) registers its engine class, the name that
``engine.name`` selects it by, and the yacs node its YAML files may set::

    from yacs.config import CfgNode as CN
    from reid_ext.engines import ReidExtEngine
    from reid_ext.registry import register_engine

    def _defaults():
        node = CN()
        node.alpha = 0.9
        return node

    @register_engine('my_method', node=('my_method', _defaults))
    class MyEngine(ReidExtEngine):
        @classmethod
        def from_config(cls, cfg, datamanager, model, optimizer, scheduler):
            return cls(datamanager, model, optimizer, scheduler, use_gpu=cfg.use_gpu,
                       alpha=cfg.my_method.alpha)

        def forward_loss(self, data):
            ...
            return loss, {'loss': loss.item()}

A YAML file outside ``reid_ext`` names the module under the top-level key ``custom_imports``
(a list of importable module names, as mmengine's ``custom_imports``); the YAML loader
(:func:`reid_ext.config.load_config`) imports them *before* merging, so their nodes exist
when yacs checks the keys.
"""
import importlib
from typing import Callable, Dict, Optional, Tuple

__all__ = ['ENGINES', 'CONFIG_NODES', 'register_engine', 'register_config_node', 'get_engine',
           'import_modules']

#: engine name -> engine class (``engine.name`` of the YAML)
ENGINES: Dict[str, type] = {}
#: top-level YAML node name -> callable returning the node's default ``CfgNode``
CONFIG_NODES: Dict[str, Callable] = {}


def _qualified(obj) -> str:
    return f'{getattr(obj, "__module__", "?")}.{getattr(obj, "__qualname__", repr(obj))}'


def register_config_node(name: str, defaults: Callable) -> None:
    """Declare the top-level YAML node ``name`` with the defaults ``defaults()`` (a CfgNode).

    Idempotent for the same function (also after a module reload); a different function under a
    taken name raises ``KeyError``.
    """
    if not callable(defaults):
        raise TypeError(f'config node {name!r}: defaults must be a callable returning a CfgNode, '
                        f'got {type(defaults).__name__}')
    old = CONFIG_NODES.get(name)
    if old is not None and old is not defaults and _qualified(old) != _qualified(defaults):
        raise KeyError(f'config node {name!r} is already declared by {_qualified(old)}; refusing '
                       f'to replace it with {_qualified(defaults)}. Rename one of them.')
    CONFIG_NODES[name] = defaults


def register_engine(name: str, node: Optional[Tuple[str, Callable]] = None):
    """Class decorator: make ``engine.name: <name>`` build this engine.

    Args:
        name (str): value of ``engine.name`` that selects the engine.
        node (tuple, optional): ``(node_name, defaults)``: a top-level YAML node and a callable
            returning its default ``CfgNode`` (see :func:`register_config_node`).

    The class must provide ``from_config(cfg, datamanager, model, optimizer, scheduler)``
    (:class:`reid_ext.engines.ReidExtEngine` has one that passes the common arguments only).
    Re-registering the same class (or the same ``module.qualname`` after a reload) is a no-op; a
    different class under a taken name raises ``KeyError``.
    """

    def wrap(cls):
        if not hasattr(cls, 'from_config'):
            raise TypeError(f'engine {name!r}: {_qualified(cls)} has no from_config(cfg, datamanager, '
                            'model, optimizer, scheduler); subclass reid_ext.engines.ReidExtEngine')
        old = ENGINES.get(name)
        if old is not None and old is not cls and _qualified(old) != _qualified(cls):
            raise KeyError(f'engine {name!r} is already registered by {_qualified(old)}; refusing to '
                           f'replace it with {_qualified(cls)}. Rename one of them.')
        if node is not None:
            register_config_node(*node)
        ENGINES[name] = cls
        return cls

    return wrap


def get_engine(name: str) -> type:
    """The engine class registered as ``name`` (raises with the registered names and the fix)."""
    import reid_ext.engines  # noqa: F401  (registers reid_ext's own engines)
    if name not in ENGINES:
        raise KeyError(f'engine.name {name!r} is not a registered engine; registered: '
                       f'{sorted(ENGINES)}. An engine defined outside reid_ext must be imported '
                       f'first: list its module under the YAML key custom_imports.')
    return ENGINES[name]


def import_modules(modules) -> None:
    """Import ``custom_imports`` modules (they register engines, nodes, models, datasets)."""
    if isinstance(modules, str):
        modules = [modules]
    for m in modules or ():
        try:
            importlib.import_module(m)
        except ImportError as e:
            raise ImportError(f'custom_imports: cannot import {m!r} ({e}); it must be importable '
                              f'(on PYTHONPATH or installed)') from e
