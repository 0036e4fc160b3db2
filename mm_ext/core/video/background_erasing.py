"""Background erasing (BE): add a static frame of the clip to every frame.

`Removing the Background by Adding the Background: Towards Background Robust
Self-supervised Video Representation Learning <https://arxiv.org/abs/2009.05769>`_,
Sec. 3.2 ("distracting video"): for a clip ``x`` of ``T`` frames a frame index
``t*`` is drawn and every frame becomes ``(1 - lam) * x_j + lam * x_{t*}``.
"""
from typing import Optional, Tuple

import torch

__all__ = ['background_erasing']


def background_erasing(clips: torch.Tensor,
                       max_lambda: float = 0.3,
                       per_sample: bool = False,
                       lam: Optional[torch.Tensor] = None,
                       frame_index: Optional[torch.Tensor] = None,
                       generator: Optional[torch.Generator] = None,
                       source: str = 'same'
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix one static frame of each clip into all of its frames.

    Args:
        clips (Tensor): videos of shape (B, C, T, H, W), B clips of C channels,
            T frames of H x W pixels (normalised or not: the op is affine).
        max_lambda (float): mixing weights are drawn from U(0, max_lambda).
            Defaults to 0.3 (official).
        per_sample (bool): draw one weight per clip instead of one per batch
            (official: one per batch). Defaults to False.
        lam (Tensor, optional): fixed mixing weight(s), a scalar or shape (B,);
            overrides the random draw.
        frame_index (Tensor, optional): fixed static-frame index per clip,
            shape (B,) of ints in [0, T); overrides the random draw. The static
            frame always comes from the same clip ("version 2" of the release).
        generator (torch.Generator, optional): random generator for the draws.
        source (str): clip the static frame comes from: 'same' (release's
            version 2, default), 'next' (clip (b + 1) mod B, version 1) or
            'random' (a random other clip, version 3).

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``(mixed, lam, frame_index)``; ``mixed``
        is a new tensor of shape (B, C, T, H, W) (the input is not modified),
        ``lam`` has shape (B,), ``frame_index`` shape (B,) (int64).
    """
    if clips.dim() != 5:
        raise ValueError(f'background_erasing: clips must be (B, C, T, H, W), got shape '
                         f'{tuple(clips.shape)}; stack the views / add the batch dim first')
    if not 0.0 <= max_lambda <= 1.0:
        raise ValueError(f'background_erasing: max_lambda must be in [0, 1], got {max_lambda}')
    b, _, t = clips.shape[:3]
    dev = clips.device
    if lam is None:
        n = b if per_sample else 1
        lam = torch.rand(n, generator=generator, device='cpu').to(dev) * max_lambda
        lam = lam.expand(b)
    else:
        lam = torch.as_tensor(lam, dtype=clips.dtype, device=dev).reshape(-1).expand(b)
    if frame_index is None:
        frame_index = torch.randint(0, t, (b,), generator=generator, device='cpu').to(dev)
    else:
        frame_index = torch.as_tensor(frame_index, dtype=torch.long, device=dev).reshape(b)
        if (frame_index < 0).any() or (frame_index >= t).any():
            raise ValueError(f'background_erasing: frame_index must be in [0, {t}), got '
                             f'{frame_index.tolist()}')
    if source == 'same':
        src = torch.arange(b, device=dev)
    elif source == 'next':
        src = (torch.arange(b, device=dev) + 1) % b
    elif source == 'random':
        off = torch.randint(1, max(b, 2), (b,), generator=generator, device='cpu').to(dev)
        src = (torch.arange(b, device=dev) + off) % b
    else:
        raise ValueError(f"background_erasing: source must be 'same', 'next' or 'random', got "
                         f'{source!r}')
    lam = lam.to(clips.dtype)
    # static frame of each clip: (B, C, 1, H, W)
    static = clips[src, :, frame_index].unsqueeze(2)
    w = lam.view(b, 1, 1, 1, 1)
    mixed = clips * (1 - w) + static * w
    return mixed, lam, frame_index
