"""One training step of MoCo-style video pretraining in the modes of DSM and BE/TBE.

Papers: DSM `arXiv 2009.05757 <https://arxiv.org/abs/2009.05757>`_ and BE / TBE
`arXiv 2009.05769 <https://arxiv.org/abs/2009.05769>`_. Every sample carries three
views of one video: anchor (window W), positive (window W, another
augmentation) and negative (a temporally shifted window W' of the same video).

======== ============================== ==================== ==================
mode     query (f_q, with grad)         key (f_k, no grad)   extra negative
======== ============================== ==================== ==================
moco     anchor                         positive             f_q(negative of the
                                                             next sample): another video
                                                             ('intra': f_q(negative))
dsm      TPS / push warp(anchor)        positive             f_q(negative)
be       BE(anchor)                     positive             f_q(negative)
tbe      reverse_t(BE(anchor))          positive             f_q(negative)
         + L_TCR(f_k map, f_q map)
dsm_triplet  warp(anchor), f_q(positive), f_q(negative): triplet loss, no queue
======== ============================== ==================== ==================

InfoNCE logits are ``[q.k, q.Q_1..q.Q_K, q.n] / tau`` (target 0).
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch

from .background_erasing import background_erasing
from .losses import dsm_triplet_loss, infonce_with_extra_negative, temporal_consistency_loss
from .spatial_disturbance import push_warp, tps_warp
from .temporal_disturbance import reverse_time, temporal_eda

__all__ = ['MODES', 'ContrastiveConfig', 'video_contrastive_loss', 'disturb']

MODES = ('moco', 'dsm', 'dsm_triplet', 'be', 'tbe')

Encoder = Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]


@dataclass
class ContrastiveConfig:
    """Settings of :func:`video_contrastive_loss` (defaults = the releases).

    Attributes:
        mode (str): one of ``MODES``.
        temperature (float): InfoNCE tau. 0.07.
        triplet_margin (float): DSM-Triplet margin. 0.5.
        tcr_weight (float): weight of TBE's temporal consistency loss. 1.0.
        tcr_in_nce (bool): TBE: the reversed distracting clip is also the InfoNCE
            query (one forward). False adds a forward of the un-reversed clip for
            InfoNCE. True.
        spatial_warp (str): DSM: 'tps' (paper figure) or 'push' (release). 'tps'.
        tps_grid (int): TPS control grid side. 5.
        tps_jitter (float): TPS control point jitter. 0.1.
        be_max_lambda (float): BE mixing weight bound. 0.3.
        be_source (str): clip of the BE static frame: 'same' (release), 'next',
            'random'. 'same'.
        per_sample (bool): one disturbance draw per clip instead of per batch.
            False.
        disturb_side (str): 'query' (release) or 'key'. 'query'.
        negative_eda (str, optional): 'swap' / 'insert' temporal EDA on the
            negative (off in the release). None.
        negative_eda_ratio (float): fraction of frames changed by EDA. 0.1.
        moco_negative (str): 'moco' mode's extra negative: 'other' - the
            negative window of the next sample, i.e. another video (release
            baseline); 'intra' - this video's own shifted window, as DSM / BE
            get (the ablation "MoCo + intra-video negative"). 'other'.
    """

    mode: str = 'dsm'
    temperature: float = 0.07
    triplet_margin: float = 0.5
    tcr_weight: float = 1.0
    tcr_in_nce: bool = True
    spatial_warp: str = 'tps'
    tps_grid: int = 5
    tps_jitter: float = 0.1
    be_max_lambda: float = 0.3
    be_source: str = 'same'
    per_sample: bool = False
    disturb_side: str = 'query'
    negative_eda: Optional[str] = None
    negative_eda_ratio: float = 0.1
    moco_negative: str = 'other'

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {self.mode!r}')
        if self.spatial_warp not in ('tps', 'push'):
            raise ValueError(f"spatial_warp must be 'tps' or 'push', got {self.spatial_warp!r}")
        if self.disturb_side not in ('query', 'key'):
            raise ValueError(f"disturb_side must be 'query' or 'key', got {self.disturb_side!r}")
        if self.negative_eda not in (None, 'swap', 'insert'):
            raise ValueError(f"negative_eda must be None, 'swap' or 'insert', got "
                             f'{self.negative_eda!r}')
        if self.moco_negative not in ('other', 'intra'):
            raise ValueError(f"moco_negative must be 'other' or 'intra', got "
                             f'{self.moco_negative!r}')
        if self.temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {self.temperature}')


def disturb(clips: torch.Tensor, cfg: ContrastiveConfig,
            generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Apply the mode's disturbance to clips (B, C, T, H, W); identity for 'moco'."""
    if cfg.mode in ('dsm', 'dsm_triplet'):
        if cfg.spatial_warp == 'tps':
            return tps_warp(clips, cfg.tps_grid, cfg.tps_jitter, cfg.per_sample,
                            generator=generator)[0]
        return push_warp(clips, per_sample=cfg.per_sample, generator=generator)[0]
    if cfg.mode in ('be', 'tbe'):
        return background_erasing(clips, cfg.be_max_lambda, cfg.per_sample, generator=generator,
                                  source=cfg.be_source)[0]
    return clips


def video_contrastive_loss(views: torch.Tensor,
                           encode_query: Encoder,
                           encode_key: Encoder,
                           queue: Optional[torch.Tensor],
                           cfg: ContrastiveConfig,
                           generator: Optional[torch.Generator] = None
                           ) -> Tuple[Dict[str, torch.Tensor], Optional[torch.Tensor]]:
    """Losses of one batch and the keys to enqueue.

    Args:
        views (Tensor): shape (B, 3, C, T, H, W): anchor, positive, negative.
        encode_query (callable): clip (N, C, T, H, W) -> (feature map
            (N, C', T', H', W') or pooled (N, C'), embedding (N, D)), with grad.
        encode_key (callable): same signature; called under ``no_grad``.
        queue (Tensor, optional): (K, D) negatives, a copy the caller may modify
            after this returns; unused (may be None) for 'dsm_triplet'.
        cfg (ContrastiveConfig): settings.
        generator (torch.Generator, optional): random generator of the draws.

    Returns:
        tuple[dict, Tensor | None]: losses ('loss_nce' or 'loss_triplet',
        'loss_tcr' for tbe) plus the logged 'nce_acc' (top-1 of the positive
        logit), and the keys (B, D) to enqueue (None for 'dsm_triplet').
    """
    if views.dim() != 6 or views.shape[1] != 3:
        raise ValueError(f'views must be (B, 3, C, T, H, W) = anchor, positive, negative; got '
                         f'{tuple(views.shape)}. Use the VideoSSL multi-view pipeline (3 views).')
    anchor, positive, negative = views[:, 0], views[:, 1], views[:, 2]
    if cfg.negative_eda is not None:
        negative = temporal_eda(negative, cfg.negative_eda_ratio, cfg.negative_eda, generator)
    if cfg.disturb_side == 'query':
        anchor = disturb(anchor, cfg, generator)
    else:
        positive = disturb(positive, cfg, generator)
    losses: Dict[str, torch.Tensor] = {}

    if cfg.mode == 'dsm_triplet':
        _, q = encode_query(anchor)
        _, p = encode_query(positive)
        _, n = encode_query(negative)
        losses['loss_triplet'] = dsm_triplet_loss(q, p, n, cfg.triplet_margin)
        return losses, None

    if queue is None:
        raise ValueError(f'mode {cfg.mode!r} needs a queue (K, D)')
    with torch.no_grad():
        map_k, k = encode_key(positive)
    if cfg.mode == 'tbe':
        rev = reverse_time(anchor)
        map_r, q_r = encode_query(rev)
        q = q_r if cfg.tcr_in_nce else encode_query(anchor)[1]
        if map_r.dim() != 5:
            raise ValueError('tbe needs a backbone that returns a (B, C, T, H, W) feature map')
        losses['loss_tcr'] = cfg.tcr_weight * temporal_consistency_loss(map_k.detach(), map_r)
    else:
        _, q = encode_query(anchor)
    _, n = encode_query(negative)
    if cfg.mode == 'moco' and cfg.moco_negative == 'other':
        # the baseline's extra negative is a clip of another video
        n = torch.roll(n, 1, 0) if n.shape[0] > 1 else None
    loss, logits = infonce_with_extra_negative(q, k, queue, n, cfg.temperature)
    losses['loss_nce'] = loss
    with torch.no_grad():
        losses['nce_acc'] = (logits.argmax(1) == 0).float().mean()
    return losses, k.detach()
