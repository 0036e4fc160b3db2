"""mmpretrain adapters; importing this module registers them (``custom_imports``)."""
from . import datasets  # noqa: F401
from . import pff  # noqa: F401
from . import grafting  # noqa: F401
