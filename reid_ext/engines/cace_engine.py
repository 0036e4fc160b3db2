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
Re-scoring memory is bounded by ``cace.rescore_cache_mb``: the backbone maps are recomputed
from the test loaders in query blocks and, per block, only for the gallery images its top-k
need (:meth:`CACEEngine.rescore_distances`); under DDP every rank re-scores (same result).
"""
import time
from typing import Dict

import torch
import torch.nn.functional as F
import torchreid
from yacs.config import CfgNode as CN

from reid_ext.core.cace import (WarmupCosineLR, mixed_up_id_loss, pair_distance_matrix,
                                pairwise_batch_hard_triplet, rescore_combine, sample_pairs)
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
    n.rescore_pairs = 200    # (query, gallery) pairs per batched D_qg evaluation
    n.rescore_cache_mb = 2048  # test feature maps held at once (recomputed per block)
    n.rescore_half = True    # hold those maps in float16 on the CPU
    return n


@register_engine('cace', node=('cace', cace_config_node))
class CACEEngine(ReidExtEngine):
    """CACE-Net training and evaluation (see the module docstring).

    Args:
        datamanager, model, optimizer, scheduler, use_gpu: as :class:`ReidExtEngine`.
        alpha, margin, weight_x, weight_mix, weight_t, weight_pair, label_smooth, pair_branch,
        max_pairs, rescore_topk, rescore_weight, rescore_pairs, rescore_cache_mb, rescore_half:
        the ``cace`` node.
    """

    def __init__(self, datamanager, model, optimizer, scheduler=None, use_gpu=False, alpha=0.9,
                 margin=0.5, weight_x=1.0, weight_mix=1.0, weight_t=1.0, weight_pair=1.0,
                 label_smooth=False, pair_branch=True, max_pairs=0, rescore_topk=0,
                 rescore_weight=1.0, rescore_pairs=200, rescore_cache_mb=2048,
                 rescore_half=True):
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
        self.rescore_pairs, self.rescore_half = max(1, int(rescore_pairs)), bool(rescore_half)
        self.rescore_cache_mb = float(rescore_cache_mb)
        if self.rescore_cache_mb <= 0:
            raise ValueError(f'cace.rescore_cache_mb must be > 0, got {rescore_cache_mb}')
        #: numbers without re-scoring of each evaluated target (when rescore_topk > 0)
        self.plain_results: Dict[str, dict] = {}
        self.rescore_seconds_per_query = 0.0
        self._rescore_loaders = None

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
                   rescore_pairs=c.rescore_pairs, rescore_cache_mb=c.rescore_cache_mb,
                   rescore_half=c.rescore_half)

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
    def test_maps(self, loader, idx: torch.Tensor) -> torch.Tensor:
        """Backbone maps of the images ``idx`` of a test loader's dataset (CPU, float16 when
        ``rescore_half``), batched like the loader."""
        sub = torch.utils.data.DataLoader(
            torch.utils.data.Subset(loader.dataset, idx.tolist()), batch_size=loader.batch_size,
            shuffle=False, num_workers=loader.num_workers, collate_fn=loader.collate_fn)
        net = _unwrap(self.model)
        out = []
        for data in sub:
            imgs = self.parse_data_for_eval(data)[0]
            if self.use_gpu:
                imgs = imgs.cuda()
            out.append(net.backbone(imgs).to(torch.float16 if self.rescore_half
                                              else torch.float32).cpu())
        return torch.cat(out)

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

    @torch.no_grad()
    def rescore_distances(self, top: torch.Tensor, query_maps, gallery_maps) -> torch.Tensor:
        """``D_qg`` (Q, k) of each query's top-k gallery entries ``top`` with bounded memory.

        ``query_maps`` / ``gallery_maps``: ``idx (n,) -> (n, C, H, W)`` maps. Queries go in
        blocks holding about 3/4 of ``rescore_cache_mb`` of maps; for each block, the gallery
        images its top-k need are taken in blocks of the remaining quarter, and the pairs of the
        two blocks are scored ``rescore_pairs`` at a time. Every query's maps are computed once,
        a gallery image's once per query block that needs it (once in all when everything fits).
        """
        q, k = top.shape
        new = torch.empty(q, k)
        if q == 0 or k == 0:
            return new
        probe = query_maps(torch.zeros(1, dtype=torch.long))
        per_map = probe.element_size() * probe[0].numel()
        budget = max(2, int(self.rescore_cache_mb * 2 ** 20 // per_map))
        q_block = max(1, 3 * budget // 4)
        g_block = max(1, budget - q_block)
        for qs in range(0, q, q_block):
            rows = torch.arange(qs, min(q, qs + q_block))
            qm = query_maps(rows)
            tb = top[rows]
            need = tb.unique()  # sorted gallery indices of this block's top-k
            for gs in range(0, len(need), g_block):
                gidx = need[gs:gs + g_block]
                gm = gallery_maps(gidx)
                r, c = ((tb >= gidx[0]) & (tb <= gidx[-1])).nonzero(as_tuple=True)
                gl = torch.searchsorted(gidx, tb[r, c])
                for ps in range(0, len(r), self.rescore_pairs):
                    sl = slice(ps, ps + self.rescore_pairs)
                    new[rows[r[sl]], c[sl]] = self.pair_distance(qm, gm, r[sl], gl[sl])
        return new

    def _maps_source(self, split: dict, which: int):
        if 'maps' in split:  # given maps (benchmark, tests)
            return lambda idx: split['maps'][idx]
        loader = (self._rescore_loaders or (None, None))[which]
        if loader is None:
            raise ValueError('cace re-scoring needs the test loaders (set by _evaluate) or '
                             "'maps' in the query/gallery dicts")
        return lambda idx: self.test_maps(loader, idx)

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
        dm = torch.as_tensor(distmat)
        top = dm.topk(min(self.rescore_topk, dm.shape[1]), dim=1, largest=False).indices
        new = self.rescore_distances(top, self._maps_source(query, 0),
                                     self._maps_source(gallery, 1))
        out = rescore_combine(dm, top, new, self.rescore_weight)
        self.rescore_seconds_per_query = (time.time() - t) / max(1, len(query['pids']))
        return out.numpy()

    def _evaluate(self, dataset_name='', **kwargs):
        self._current_target = dataset_name
        self._rescore_loaders = (kwargs.get('query_loader'), kwargs.get('gallery_loader'))
        try:
            return super()._evaluate(dataset_name=dataset_name, **kwargs)
        finally:
            self._rescore_loaders = None
