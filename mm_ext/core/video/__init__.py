"""Torch-only ops of self-supervised video pretraining (DSM, BE / TBE)."""
from .background_erasing import background_erasing
from .bn_c3d import BNC3D
from .bn_inception_i3d import BNInceptionI3D
from .convert import convert_official_state_dict
from .distributed import (SyncBatchNorm, batch_shuffle, batch_unshuffle, convert_sync_batchnorm,
                          world_info)
from .evaluation import linear_probe, paired_summary, summarize, t_quantile
from .losses import dsm_triplet_loss, infonce_with_extra_negative, temporal_consistency_loss
from .momentum_update import momentum_update
from .projection_head import ProjectionHead
from .queue import concat_all_gather, enqueue_wraparound
from .normalization import double_normalization_mean_std
from .retrieval import knn_classify, retrieval_recall
from .spatial_disturbance import push_warp, random_push_params, tps_solve, tps_transform, tps_warp
from .temporal_disturbance import (reverse_time, sample_anchor_and_negative, temporal_eda,
                                   window_indices)
from .video_contrastive import MODES, ContrastiveConfig, disturb, video_contrastive_loss

__all__ = [
    'background_erasing', 'BNC3D', 'BNInceptionI3D', 'convert_official_state_dict', 'SyncBatchNorm',
    'batch_shuffle', 'batch_unshuffle', 'convert_sync_batchnorm', 'world_info', 'linear_probe',
    'paired_summary', 'summarize', 't_quantile', 'double_normalization_mean_std', 'knn_classify',
    'dsm_triplet_loss', 'infonce_with_extra_negative',
    'temporal_consistency_loss', 'momentum_update', 'ProjectionHead', 'concat_all_gather',
    'enqueue_wraparound', 'retrieval_recall', 'push_warp', 'random_push_params', 'tps_solve',
    'tps_transform', 'tps_warp', 'reverse_time', 'sample_anchor_and_negative', 'temporal_eda',
    'window_indices', 'MODES', 'ContrastiveConfig', 'disturb', 'video_contrastive_loss'
]
