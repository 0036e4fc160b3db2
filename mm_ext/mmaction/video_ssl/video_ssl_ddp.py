"""DDP wrapper of ``VideoContrastive`` that keeps the key update once per optimiser step."""
from mmaction.registry import MODEL_WRAPPERS
from mmengine.model import MMDistributedDataParallel

from mm_ext._registry import register
from .video_contrastive import run_train_step

__all__ = ['VideoSSLDistributedDataParallel']


@register(MODEL_WRAPPERS)
class VideoSSLDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` whose ``train_step`` defers the module's momentum update and
    enqueue to right after the optimiser step (once per step, also with gradient accumulation).

    Use it with ``model_wrapper_cfg = dict(type='VideoSSLDistributedDataParallel')`` (the
    video-SSL runtime config sets it); the wrapped module must be a ``VideoContrastive``.
    """

    def train_step(self, data, optim_wrapper):
        return run_train_step(self.module, super().train_step, data, optim_wrapper)
