"""Model wrapper for one ring member per rank: no gradient synchronisation."""
import torch.nn as nn
from mmengine.registry import MODEL_WRAPPERS  # the root: Runner.wrap_model looks the type up there

from mm_ext._registry import register


@register(MODEL_WRAPPERS)
class GraftingRankWrapper(nn.Module):
    """Holds a ``GraftingClassifier`` whose ranks train different networks.

    DDP would all-reduce gradients of different networks; this wrapper only marks the model as
    wrapped for mmengine and forwards ``train_step`` / ``val_step`` / ``test_step``. Ranks meet
    only in the grafting exchange, the DGD logits and the evaluation (``GraftingClassifier``).
    Set ``model_wrapper_cfg = dict(type='GraftingRankWrapper')``; extra arguments that the tools
    add for DDP (``device_ids`` ...) are ignored.
    """

    def __init__(self, module: nn.Module, **kwargs):
        super().__init__()
        self.module = module

    def train_step(self, data, optim_wrapper):
        return self.module.train_step(data, optim_wrapper)

    def val_step(self, data):
        return self.module.val_step(data)

    def test_step(self, data):
        return self.module.test_step(data)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
