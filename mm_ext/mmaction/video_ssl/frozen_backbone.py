"""Freezing switch shared by the video-SSL backbones registered here (linear evaluation)."""
import torch.nn as nn

__all__ = ['FrozenMixin']


class FrozenMixin:
    """``frozen=True``: no parameter needs gradients and every sub-module stays in eval mode."""

    def _init_frozen(self, frozen: bool) -> None:
        self.frozen = frozen
        if frozen:
            for p in self.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        nn.Module.train(self, mode and not self.frozen)
        return self
