"""mmaction2 adapters of mm-ext; importing this module registers them.

Configs load it with ``custom_imports = dict(imports=['mm_ext.mmaction'],
allow_failed_imports=False)``. ``import mm_ext`` runs first and installs the
stub for the ``mmaction.models.localizers.drn`` module missing from the
mmaction2 1.2.0 wheel, so ``mmaction.models`` imports.
"""
import mm_ext  # noqa: F401  (compat fixes before any mmaction import)

import mmaction.models  # noqa: F401,E402  (fills the registries: Recognizer3D, ResNet3d, ...)
import mmaction.datasets  # noqa: F401,E402

from .video_ssl import *  # noqa: F401,F403,E402
from .video_ssl import __all__  # noqa: E402
