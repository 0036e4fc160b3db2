"""Named filters for the hosts' known deprecation chatter (not for warnings in general).

Each entry names what it hides and why it is harmless here; everything else still shows.
Python warnings are filtered with :func:`warnings.filterwarnings` by category, message and
emitting module; mmengine's logger messages (``print_log(..., level=WARNING)``, which the
``warnings`` module never sees) by a :class:`logging.Filter` on every ``MMLogger``.
``MMEXT_SHOW_HOST_DEPRECATIONS=1`` turns all of them off.
"""
import logging
import os
import re
import warnings

from .post_import import when_imported

__all__ = ['PY_WARNINGS', 'LOG_MESSAGES', 'HostChatterFilter', 'apply']

# (category, message regex, emitting-module regex, why it is safe to hide)
PY_WARNINGS = (
    (UserWarning, r'Cython evaluation \(very fast so highly recommended\) is unavailable',
     r'torchreid\.reid\.metrics\.rank',
     'torchreid falls back to its python ranking at import; reid_ext ranks with its own vectorised code'),
)

# (mmengine logger message regex, why)
LOG_MESSAGES = (
    (r'^"FileClient" will be deprecated in future',
     'mmdet/mmaction2/mmpretrain 1.x datasets still build a FileClient; printed for every dataset built'),
    (r'^"HardDiskBackend" is the alias of "LocalBackend"', 'same source as the FileClient message'),
)


def _enabled() -> bool:
    return os.environ.get('MMEXT_SHOW_HOST_DEPRECATIONS', '').strip().lower() not in ('1', 'true', 'yes')


class HostChatterFilter(logging.Filter):
    """Drops the mmengine log records listed in :data:`LOG_MESSAGES`."""

    patterns = tuple(re.compile(p) for p, _ in LOG_MESSAGES)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge
            return True
        return not any(p.search(msg) for p in self.patterns)


_FILTER = HostChatterFilter()


def _patch_mmlogger(module) -> None:
    cls = module.MMLogger
    if getattr(cls.__init__, '__mm_ext_filtered__', False):
        return
    original = cls.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.addFilter(_FILTER)

    __init__.__mm_ext_filtered__ = True
    cls.__init__ = __init__
    for inst in list(getattr(cls, '_instance_dict', {}).values()):
        inst.addFilter(_FILTER)


def apply() -> None:
    if not _enabled():
        return
    for category, message, module, _ in PY_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=category, module=module)
    when_imported('mmengine.logging.logger', _patch_mmlogger)
