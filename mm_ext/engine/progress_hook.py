"""``ProgressHook``: an mmengine run reports its progress to a status file for a progress line.

``tools/train.py``/``tools/test.py`` add it when ``$MMEXT_PROGRESS_FILE`` is set (what
:func:`mm_ext.engine.progress.run_logged` does); a config can also list it in ``custom_hooks``
with an explicit ``file``. It only writes the file (at most every ``min_interval`` seconds), so
the run's own log output is unchanged and draws no random numbers.
"""
import os
import time
from typing import Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mm_ext._registry import register

from .progress import ENV, write_status

__all__ = ['ProgressHook', 'inject_progress']


@register(HOOKS)
class ProgressHook(Hook):
    """Write ``{phase, done, total, epoch, max_epochs, loss}`` to a JSON status file.

    Args:
        file (str, optional): status file. Defaults to ``$MMEXT_PROGRESS_FILE`` (no-op if unset).
        min_interval (float): seconds between writes. Defaults to 0.5.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, file: Optional[str] = None, min_interval: float = 0.5):
        self.file = file or os.environ.get(ENV)
        self.min_interval = min_interval
        self._t = 0.0

    def _write(self, force=False, **status):
        if not self.file:
            return
        now = time.time()
        if not force and now - self._t < self.min_interval:
            return
        self._t = now
        try:
            write_status(self.file, **status)
        except OSError:
            pass

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        loss = None
        if isinstance(outputs, dict) and 'loss' in outputs:
            try:
                v = outputs['loss']
                loss = float(v.detach() if hasattr(v, 'detach') else v)
            except (TypeError, ValueError, RuntimeError):
                loss = None
        loop = runner.train_loop
        by_epoch = hasattr(loop, 'max_epochs') and not hasattr(loop, 'dataloader_iterator')
        self._write(phase='train', done=runner.iter + 1, total=runner.max_iters, loss=loss,
                    epoch=runner.epoch + 1 if by_epoch else None, max_epochs=runner.max_epochs if by_epoch else None)

    def _eval_iter(self, runner, phase, batch_idx):
        loop = runner.val_loop if phase == 'val' else runner.test_loop
        total = len(loop.dataloader) if hasattr(loop, 'dataloader') else None
        self._write(phase=phase, done=batch_idx + 1, total=total, force=total is not None and batch_idx + 1 == total)

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._eval_iter(runner, 'val', batch_idx)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._eval_iter(runner, 'test', batch_idx)


def inject_progress(cfg) -> bool:
    """Add a :class:`ProgressHook` to ``cfg.custom_hooks`` when ``$MMEXT_PROGRESS_FILE`` is set."""
    if not os.environ.get(ENV):
        return False
    hooks = list(cfg.get('custom_hooks', None) or [])
    if any((h.get('type') if isinstance(h, dict) else type(h).__name__) in ('ProgressHook', ProgressHook)
           for h in hooks):
        return False
    hooks.append(dict(type='ProgressHook'))
    cfg.custom_hooks = hooks
    return True
