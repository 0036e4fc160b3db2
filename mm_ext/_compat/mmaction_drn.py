"""The mmaction2 1.2.0 wheel lacks ``mmaction.models.localizers.drn``.

``mmaction/models/localizers/__init__.py`` does ``from .drn.drn import DRN``, so
``import mmaction.models`` fails with ``ModuleNotFoundError``
(open-mmlab/mmaction2 issue #2714). When (and only when) the installed
mmaction2 lacks the folder, stub modules are placed in ``sys.modules``; their
``DRN`` raises a clear error if someone actually builds it.
"""
import importlib.util
import os
import sys
import types

_NAMES = ('mmaction.models.localizers.drn', 'mmaction.models.localizers.drn.drn')


class DRN:  # noqa: D101 - placeholder
    def __init__(self, *args, **kwargs):
        raise ImportError(
            'mmaction.models.localizers.drn is missing from the installed mmaction2 1.2.0 wheel '
            '(open-mmlab/mmaction2#2714); mm_ext installed a placeholder so that '
            '`import mmaction.models` works. Install mmaction2 from source to use DRN.')


def _missing() -> bool:
    try:
        spec = importlib.util.find_spec('mmaction')
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    pkg = list(spec.submodule_search_locations)[0]
    loc = os.path.join(pkg, 'models', 'localizers')
    return os.path.isdir(loc) and not os.path.isdir(os.path.join(loc, 'drn'))


def apply() -> bool:
    """Install the stub when needed. Returns True if the stub is (now) active."""
    if _NAMES[0] in sys.modules:
        return getattr(sys.modules[_NAMES[0]], '__mm_ext_stub__', False)
    if not _missing():
        return False
    pkg = types.ModuleType(_NAMES[0])
    pkg.__path__ = []  # a package, so `from .drn import DRN` also resolves
    pkg.__mm_ext_stub__ = True
    mod = types.ModuleType(_NAMES[1])
    mod.__mm_ext_stub__ = True
    mod.DRN = DRN
    pkg.DRN = DRN
    pkg.drn = mod
    sys.modules[_NAMES[0]] = pkg
    sys.modules[_NAMES[1]] = mod
    return True
