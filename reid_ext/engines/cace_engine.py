"""CACE-Net engine (``engine.name: cace``; spec reid.md §1.3-1.5, decisions 1-3).

Per batch (P x K identity sampling, K = 4, 16 images per device by default): all B² ordered
pairs (self-pairs included; ``cace.max_pairs`` sub-samples them), and the four losses, weight 1
each: ID CE on the individual features, the mixed-up ID loss (alpha 0.9) on the conditional
features, batch-hard triplet (margin 0.5) on the L2-normalised individual features, and the
pairwise batch-hard triplet on ``D_ij = ||n(f_{i|j}) - n(f_{j|i})||`` (margin 0.5).
``cace.pair_branch: False`` trains the same network with the individual losses only (baseline).

Schedule: ``cace.warmup_cosine`` replaces ``train.lr_scheduler`` by linear warm-up + cosine.
Test: the individual embedding (flip averaging via ``test.flip``); ``cace.rescore_topk > 0``
re-scores each query's top-k gallery with ``D_qg`` (batched, an extension beyond the releases)
and also prints / keeps the numbers without re-scoring (:attr:`CACEEngine.plain_results`).
"""
import time
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F
import torchreid
from yacs.config import CfgNode as CN

from reid_ext.core.cace import (WarmupCosineLR, mixed_up_id_loss, pair_distance_matrix,
                                pairwise_batch_hard_triplet, rescore_topk, sample_pairs)
from reid_ext.models import cace_net as _cace_net
from reid_ext.registry import register_engine

from .base_engine import ReidExtEngine, _unwrap

__all__ = ['CACEEngine', 'cace_config_node']

_cace_net.register()


def cace_config_node() -> CN:
    """Defaults of the top-level YAML node ``cace``."""
    n = CN()
    n.alpha = 0.9            # mixed-up ID loss
    n.margin = 0.5           # both triplets
    n.weight_x = 1.0         # ID loss on individual features
    n.weight_mix = 1.0       # mixed-up ID loss
    n.weight_t = 1.0         # triplet on individual features
    n.weight_pair = 1.0      # pairwise triplet on D_ij
    n.label_smooth = False   # TF release: plain CE (YouReID: label smoothing)
    n.pair_branch = True     # False: individual losses only (the baseline)
    n.max_pairs = 0          # 0 = all B^2 ordered pairs; else a random subset (self-pairs kept)
    n.pooling = 'avgmax'     # [GAP || GMP] (TF) or 'gem' (YouReID)
    n.embed_dim = 768
    n.reduction = 16         # graph compression
    n.non_local = 3          # non-local blocks in stage 3
    n.dropout = 0.5
    n.warmup_cosine = True   # linear warm-up + cosine (replaces train.lr_scheduler)
    n.warmup_epochs = 5
    n.warmup_factor = 0.01
    n.rescore_topk = 0       # > 0: query-conditioned re-scoring of the top-k gallery
    n.rescore_weight = 1.0   # new = w * D_qg + (1 - w) * individual distance
    n.rescore_chunk = 16     # queries per batched pair evaluation
    n.rescore_half = True    # keep test maps in float16 on the CPU (re-scoring only)
    return n


@register_engine('cace', node=('cace', cace_config_node))
class CACEEngine(ReidExtEngine):
    """CACE-Net training and evaluation (see the module docstring).

    Args:
        datamanager, model, optimizer, scheduler, use_gpu: as :class:`ReidExtEngine`.
        alpha, margin, weight_x, weight_mix, weight_t, weight_pair, label_smooth, pair_branch,
        max_pairs, rescore_topk, rescore_weight, rescore_chunk, rescore_half: the ``cace`` node.
    """

    def __init__(self, datamanager, model, optimizer, scheduler=None, use_gpu=False, alpha=0.9,
                 margin=0.5, weight_x=1.0, weight_mix=1.0, weight_t=1.0, weight_pair=1.0,
                 label_smooth=False, pair_branch=True, max_pairs=0, rescore_topk=0,
                 rescore_weight=1.0, rescore_chunk=16, rescore_half=True):
        super().__init__(datamanager, use_gpu)
        if not hasattr(_unwrap(model), 'pair_features'):
            raise TypeError(f'engine cace needs a CACE-Net model (model.name cace_net or '
                            f'cace_net_tiny), got {type(_unwrap(model)).__name__}')
        self.optimizer, self.scheduler = optimizer, scheduler
        self.model = self.register_model('model', model, optimizer, scheduler)
        self.criterion = torchreid.losses.CrossEntropyLoss(
            num_classes=datamanager.num_train_pids, use_gpu=self.use_gpu, label_smooth=label_smooth)
        self.triplet = torchreid.losses.TripletLoss(margin=margin)
        self.alpha, self.margin = float(alpha), float(margin)
        self.weights = dict(x=weight_x, mix=weight_mix, t=weight_t, pair=weight_pair)
        self.pair_branch, self.max_pairs = bool(pair_branch), int(max_pairs)
        self.rescore_topk, self.rescore_weight = int(rescore_topk), float(rescore_weight)
        self.rescore_chunk, self.rescore_half = int(rescore_chunk), bool(rescore_half)
        #: numbers without re-scoring of each evaluated target (when rescore_topk > 0)
        self.plain_results: Dict[str, dict] = {}
        self.rescore_seconds_per_query = 0.0

    @classmethod
    def model_kwargs(cls, cfg) -> dict:
        c = cfg.cace
        return dict(last_stride=cfg.model.last_stride, non_local=c.non_local,
                    embed_dim=c.embed_dim, pooling=c.pooling, reduction=c.reduction,
                    dropout=c.dropout)

    @classmethod
    def from_config(cls, cfg, datamanager, model, optimizer, scheduler):
        c = cfg.cace
        if c.warmup_cosine:
            scheduler = WarmupCosineLR(optimizer, cfg.train.max_epoch, c.warmup_epochs,
                                       c.warmup_factor)
        return cls(datamanager, model, optimizer, scheduler, use_gpu=cfg.use_gpu, alpha=c.alpha,
                   margin=c.margin, weight_x=c.weight_x, weight_mix=c.weight_mix,
                   weight_t=c.weight_t, weight_pair=c.weight_pair, label_smooth=c.label_smooth,
                   pair_branch=c.pair_branch, max_pairs=c.max_pairs,
                   rescore_topk=c.rescore_topk, rescore_weight=c.rescore_weight,
                   rescore_chunk=c.rescore_chunk, rescore_half=c.rescore_half)

    # ------------------------------------------------------------------ training
    def losses(self, out: dict, pids: torch.Tensor, pi=None, pj=None) -> Dict[str, torch.Tensor]:
        """The (up to) four loss terms of a train-mode output."""
        terms = {'loss_x': self.criterion(out['logits'].float(), pids),
                 'loss_t': self.triplet(F.normalize(out['feat'].float(), dim=1), pids)}
        if pi is not None:
            terms['loss_mix'] = mixed_up_id_loss(out['logits_ij'], out['logits_ji'], pids[pi],
                                                 pids[pj], self.alpha)
            dist, valid = pair_distance_matrix(out['feat_ij'], out['feat_ji'], pi, pj,
                                               len(pids))
            terms['loss_pair'] = pairwise_batch_hard_triplet(dist, pids, self.margin, valid)
        return terms

    def forward_loss(self, data):
        imgs, pids = self.parse_data_for_train(data)
        if self.use_gpu:
            imgs, pids = imgs.cuda(), pids.cuda()
        pi = pj = None
        if self.pair_branch:
            pi, pj = sample_pairs(len(pids), self.max_pairs, device=pids.device)
            out = self.model(imgs, pair_index=(pi, pj))
        else:
            out = self.model(imgs)
        terms = self.losses(out, pids, pi, pj)
        key = {'loss_x': 'x', 'loss_t': 't', 'loss_mix': 'mix', 'loss_pair': 'pair'}
        loss = sum(self.weights[key[k]] * v for k, v in terms.items())
        summary = {k: v.item() for k, v in terms.items()}
        summary['acc'] = torchreid.metrics.accuracy(out['logits'], pids)[0].item()
        return loss, summary

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def extract_batch(self, data):
        if self.rescore_topk <= 0:
            return super().extract_batch(data)
        imgs, pids, camids = self.parse_data_for_eval(data)
        if self.use_gpu:
            imgs = imgs.cuda()
        net = _unwrap(self.model)
        maps = net.backbone(imgs)
        feats = F.normalize(net.head.embed(maps), dim=1)
        if self.flip_test:
            feats = (feats + self.extract_features(imgs.flip(3))) / 2
        return {'feats': feats.float().cpu(), 'pids': np.asarray(pids, dtype=np.int64),
                'camids': np.asarray(camids, dtype=np.int64), 'paths': list(data['impath']),
                'maps': maps.to(torch.float16 if self.rescore_half else torch.float32).cpu()}

    @torch.no_grad()
    def pair_distance(self, qmaps: torch.Tensor, gmaps: torch.Tensor, qi: torch.Tensor,
                      gi: torch.Tensor) -> torch.Tensor:
        """``D_qg`` of the pairs ``(qi[p], gi[p])`` (projections once per distinct image)."""
        net = _unwrap(self.model)
        dev = next(net.parameters()).device
        uq, iq = qi.unique(return_inverse=True)
        ug, ig = gi.unique(return_inverse=True)
        maps = torch.cat([qmaps[uq], gmaps[ug]]).to(dev, torch.float32)
        f_q, f_g = net.pair_features(maps, iq.to(dev), (ig + len(uq)).to(dev))
        return (F.normalize(f_q, dim=1) - F.normalize(f_g, dim=1)).norm(dim=1).cpu()

    def compute_distance(self, query, gallery, dist_metric='euclidean', normalize_feature=False,
                         rerank=False):
        distmat = super().compute_distance(query, gallery, dist_metric, normalize_feature, rerank)
        if self.rescore_topk <= 0:
            return distmat
        plain = self.compute_metrics(distmat, query, gallery)
        self.plain_results[getattr(self, '_current_target', '')] = plain
        print(f'** without re-scoring: mAP {plain["mAP"]:.1%}, Rank-1 {plain["rank1"]:.1%}; '
              f're-scoring the top-{self.rescore_topk} with D_qg **')
        self.set_model_mode('eval')
        t = time.time()
        out = rescore_topk(torch.as_tensor(distmat),
                           lambda qi, gi: self.pair_distance(query['maps'], gallery['maps'], qi,
                                                             gi),
                           self.rescore_topk, self.rescore_weight, self.rescore_chunk)
        self.rescore_seconds_per_query = (time.time() - t) / max(1, len(query['pids']))
        return out.numpy()

    def _evaluate(self, dataset_name='', **kwargs):
        self._current_target = dataset_name
        return super()._evaluate(dataset_name=dataset_name, **kwargs)
