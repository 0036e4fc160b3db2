"""mmaction2 adapter of DSM / BE / TBE pretraining: a MoCo-style video ``BaseModel``.

Papers: DSM `arXiv 2009.05757 <https://arxiv.org/abs/2009.05757>`_, BE / TBE
`arXiv 2009.05769 <https://arxiv.org/abs/2009.05769>`_. The maths lives in
:mod:`mm_ext.core.video` (:func:`video_contrastive_loss`); this class owns the
modules and the state that must survive a resume (EMA key encoder, queue and
pointer as buffers) and the DDP gather of keys.
"""
import copy
from dataclasses import fields
from typing import Dict, List, Optional, Union

import torch
from mmengine.model import BaseModel

from mmaction.registry import MODELS
from mm_ext._registry import register
from mm_ext.core.video import (ContrastiveConfig, ProjectionHead, batch_shuffle, batch_unshuffle,
                               concat_all_gather, convert_sync_batchnorm, enqueue_wraparound,
                               momentum_update, video_contrastive_loss)

__all__ = ['VideoContrastive', 'run_train_step']


def run_train_step(model, step, data, optim_wrapper):
    """Run ``step(data, optim_wrapper)`` with ``model``'s key update deferred to the optimiser step.

    ``optim_wrapper.update_params`` steps the optimiser exactly when
    ``should_update()`` holds after its backward, so the same test afterwards
    says whether this micro-batch ended an optimiser step.
    """
    if not hasattr(model, 'after_optimizer_step'):
        return step(data, optim_wrapper)
    model._deferred = True
    try:
        log_vars = step(data, optim_wrapper)
    finally:
        model._deferred = False
    if optim_wrapper.should_update():
        model.after_optimizer_step()
    return log_vars

_CFG_FIELDS = tuple(f.name for f in fields(ContrastiveConfig) if f.name != 'mode')


@register(MODELS)
class VideoContrastive(BaseModel):
    """Video contrastive pretraining with an intra-video negative (modes moco/dsm/dsm_triplet/be/tbe).

    Each sample holds three views (V = 3: anchor, positive, negative window),
    produced by ``VideoSSLSampleFrames`` + ``VideoSSLMultiView``. See
    :mod:`mm_ext.core.video.video_contrastive` for what each mode computes.

    Args:
        backbone (dict): backbone config (any mmaction backbone returning a
            (N, C, T', H', W') map, e.g. ``ResNet3d``, ``ResNet2Plus1d``,
            ``BNInceptionI3D``; ``C3D`` (pooled (N, C)) works except for 'tbe').
        in_channels (int): C, backbone output channels (1024 for I3D, 512 for
            R3D-18 / R(2+1)D / BN-C3D).
        mode (str): 'moco', 'dsm', 'dsm_triplet', 'be' or 'tbe'. Defaults to 'dsm'.
        feat_dim (int): embedding size of the Linear + L2 head. Defaults to 128.
        queue_len (int): K, memory size (3569 for UCF101/HMDB51 scripts, 65536
            for Kinetics). Need not divide the batch. Defaults to 3569.
        momentum (float): key-encoder EMA weight of the *old* value, the paper's
            m (mmengine's EMA uses 1 - m). Defaults to 0.999.
        ema_buffers (str): 'own' - the key encoder keeps its own BN statistics
            (release); 'copy' - copy the query's buffers (mmengine default).
            Defaults to 'own'.
        queue_init (str): 'randn' - N(0, 1) entries, not normalised (release; the
            first K / B steps then see large random logits); 'normalized' -
            unit rows (mmpretrain). Defaults to 'randn'.
        shuffle_bn (bool): MoCo's shuffle-BN for the key encoder: under DDP the
            positives of the global batch are permuted across ranks before the
            key encoder and the keys (and TCR maps) permuted back. A no-op on
            one process. Defaults to False (release: off).
        sync_bn (bool): replace every BN of both encoders by
            :class:`mm_ext.core.video.SyncBatchNorm` (statistics over all ranks;
            works with gloo on CPU, unlike ``torch.nn.SyncBatchNorm``). Not
            together with ``shuffle_bn``. Defaults to False.
        contrastive_cfg (dict, optional): other fields of
            :class:`mm_ext.core.video.ContrastiveConfig` (temperature,
            triplet_margin, tcr_weight, tcr_in_nce, spatial_warp, tps_grid,
            tps_jitter, be_max_lambda, be_source, per_sample, disturb_side, negative_eda,
            negative_eda_ratio, moco_negative).
        data_preprocessor (dict, optional): defaults to mmaction's
            ``ActionDataPreprocessor`` with ImageNet mean/std and 'NCTHW'.
        init_cfg (dict, optional): initialisation config.

    Note:
        Through ``train_step`` (this model's, or ``VideoSSLDistributedDataParallel``'s
        under DDP) the momentum update and the enqueue happen once per
        *optimiser step*, right after it (the release's timing): with gradient
        accumulation (``optim_wrapper.accumulative_counts > 1``) the keys of
        all micro-batches of a step are held back and enqueued together, and
        every micro-batch of a step sees the same key encoder and queue. When
        ``loss`` is called directly (or inside mmengine's plain
        ``MMDistributedDataParallel``) it falls back to updating the key
        encoder at the start of the call and enqueuing at its end, i.e. once
        per call - correct without accumulation only.
        The queue is cloned before the logits are computed; the keys are
        all-gathered over ranks before the enqueue (use drop_last).
    """

    def __init__(self,
                 backbone: dict,
                 in_channels: int,
                 mode: str = 'dsm',
                 feat_dim: int = 128,
                 queue_len: int = 3569,
                 momentum: float = 0.999,
                 ema_buffers: str = 'own',
                 queue_init: str = 'randn',
                 shuffle_bn: bool = False,
                 sync_bn: bool = False,
                 contrastive_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='ActionDataPreprocessor',
                                     mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                                     format_shape='NCTHW')
        if isinstance(data_preprocessor, dict):  # mmaction's registry, also outside a Runner
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        extra = dict(contrastive_cfg or {})
        unknown = sorted(set(extra) - set(_CFG_FIELDS))
        if unknown:
            raise ValueError(f'VideoContrastive: unknown contrastive_cfg keys {unknown}; valid keys '
                             f'are {list(_CFG_FIELDS)}')
        self.cfg = ContrastiveConfig(mode=mode, **extra)
        if queue_len < 1:
            raise ValueError(f'VideoContrastive: queue_len must be >= 1, got {queue_len}')
        if ema_buffers not in ('own', 'copy'):
            raise ValueError(f"VideoContrastive: ema_buffers must be 'own' or 'copy', got "
                             f'{ema_buffers!r}')
        self.momentum = momentum
        self.ema_buffers = ema_buffers
        if shuffle_bn and sync_bn:
            raise ValueError('VideoContrastive: choose shuffle_bn or sync_bn, not both (shuffle-BN '
                             'needs per-rank BN statistics in the key encoder)')
        self.shuffle_bn = shuffle_bn
        self.backbone = MODELS.build(backbone)
        if sync_bn:
            self.backbone = convert_sync_batchnorm(self.backbone)
        self.neck = ProjectionHead(in_channels, feat_dim)
        self.key_backbone = copy.deepcopy(self.backbone)
        self.key_neck = copy.deepcopy(self.neck)
        for p in list(self.key_backbone.parameters()) + list(self.key_neck.parameters()):
            p.requires_grad_(False)
        if queue_init not in ('randn', 'normalized'):
            raise ValueError(f"VideoContrastive: queue_init must be 'randn' or 'normalized', got "
                             f'{queue_init!r}')
        queue = torch.randn(queue_len, feat_dim)  # rows are keys
        if queue_init == 'normalized':
            queue = torch.nn.functional.normalize(queue, dim=1)
        self.register_buffer('queue', queue)
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))
        self._deferred = False  # inside train_step: EMA + enqueue after the optimiser step
        self._pending_keys: List[torch.Tensor] = []

    @property
    def mode(self) -> str:
        return self.cfg.mode

    def init_weights(self) -> None:
        """Initialise the query encoder, then copy it into the key encoder."""
        super().init_weights()
        self.key_backbone.load_state_dict(self.backbone.state_dict())
        self.key_neck.load_state_dict(self.neck.state_dict())

    # encoders: clip (N, C, T, H, W) -> (map, embedding)
    def _encode_query(self, x: torch.Tensor):
        m = self.backbone(x)
        return m, self.neck(m)

    def _encode_key(self, x: torch.Tensor):
        inverse = None
        if self.shuffle_bn:
            x, inverse = batch_shuffle(x)
        m = self.key_backbone(x)
        k = self.key_neck(m)
        if inverse is not None:
            m, k = batch_unshuffle(m, inverse), batch_unshuffle(k, inverse)
        return m, k

    @torch.no_grad()
    def _update_key_encoder(self) -> None:
        momentum_update(self.key_backbone, self.backbone, self.momentum, self.ema_buffers)
        momentum_update(self.key_neck, self.neck, self.momentum, self.ema_buffers)

    def loss(self, inputs: torch.Tensor, data_samples=None) -> Dict[str, torch.Tensor]:
        """Losses of a batch of three-view clips (B, 3, C, T, H, W).

        Returns:
            dict[str, Tensor]: 'loss_nce' (or 'loss_triplet'), 'loss_tcr' (tbe)
            and the logged 'nce_acc'.
        """
        if self.training and self.mode != 'dsm_triplet' and not self._deferred:
            self._update_key_encoder()
        queue = self.queue.clone()  # the in-place enqueue below must not touch autograd's copy
        losses, keys = video_contrastive_loss(inputs, self._encode_query, self._encode_key,
                                              queue, self.cfg)
        if keys is not None and self.training:
            keys = concat_all_gather(keys)
            if self._deferred:
                self._pending_keys.append(keys)
            else:
                enqueue_wraparound(self.queue, self.queue_ptr, keys)
        return losses

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Momentum update of the key encoder, then enqueue the keys held since the last step."""
        if self.mode == 'dsm_triplet':
            return
        self._update_key_encoder()
        if self._pending_keys:
            enqueue_wraparound(self.queue, self.queue_ptr, torch.cat(self._pending_keys))
        self._pending_keys = []

    def train_step(self, data, optim_wrapper):
        """mmengine's step, with the key-encoder update and enqueue once per optimiser step."""
        return run_train_step(self, super().train_step, data, optim_wrapper)

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pooled query-backbone features.

        Args:
            inputs (Tensor): (B, C, T, H, W) or (B, N, C, T, H, W) with N clips
                or views, averaged.

        Returns:
            Tensor: (B, C').
        """
        n = 1
        if inputs.dim() == 6:
            n = inputs.shape[1]
            inputs = inputs.flatten(0, 1)
        m = self.backbone(inputs)
        if m.dim() == 5:
            m = m.mean(dim=(2, 3, 4))
        return m.view(-1, n, m.shape[-1]).mean(1)

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = 'tensor'):
        """mmengine entry point.

        'loss' -> dict of losses; 'tensor' -> pooled features (B, C');
        'predict' -> the data samples with the pooled feature in
        ``pred_feature`` (for the retrieval metric / linear evaluation).
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'tensor':
            return self.extract_feat(inputs)
        if mode == 'predict':
            feats = self.extract_feat(inputs)
            for ds, f in zip(data_samples, feats):
                ds.set_field(f.detach(), 'pred_feature', dtype=torch.Tensor)
            return data_samples
        raise ValueError(f"VideoContrastive.forward: mode must be 'loss', 'tensor' or 'predict', "
                         f'got {mode!r}')
