"""ACT: asymmetric co-teaching for unsupervised cross-domain re-ID (arXiv 1912.01349).

Two networks, M ("main", trained on *diverse* data) and C ("collaborator", trained on *pure*
data), both :class:`reid_ext.core.act_net.ACTNet`, each with its own optimiser and scheduler.
For each of ``num_rounds`` rounds t:

1. M's pool5 features of the target (and source) training images;
2. distance ``(1 - lam) d_J + lam (s_i + s_j)`` (:func:`reid_ext.core.jaccard.act_distance`,
   k1 = 20, k2 = 6, lam = 0.1);
3. DBSCAN (min_samples 4, precomputed) with eps = mean of the smallest rho = 0.16 % distances,
   computed at round 0 and then fixed (:func:`reid_ext.core.clustering.eps_from_distances`);
4. inliers keep their cluster; outliers get their nearest inlier's label;
5. ``epochs`` epochs of P x K batches over the inliers, alternating
   - even step: M ranks an inlier batch by per-sample loss, the R_t smallest train C,
   - odd step: C ranks a labelled-outlier batch, the R_t smallest plus a whole inlier batch
     train M; R_t = 0.2 + 0.8 (t + 1) / num_rounds;
   the loss is batch-hard triplet (margin 0.5) on pool5 plus on the embedding;
6. evaluate and deploy M (pool5, Euclidean).

Variants: ``coteaching='symmetric'`` (both networks on all labelled samples, each selecting the
R_t small-loss samples for the other), ``clustering='kmeans'`` with ``kmeans_k`` clusters (the
paper's oracle k = number of target IDs; in asymmetric mode the ``kmeans_outlier_frac`` samples
farthest from their centre play the outliers).

Initialisation (spec decision 10): ``act.theory_checkpoint`` loads a pre-adapted "Theory"
(UDA_TP, open-reid layout) checkpoint into both networks; otherwise ``model.load_weights`` (e.g.
the source-only model of ``configs/reid/act/source_only_*.yaml``) is used, which is a deviation
from the paper and is reported as such.

Resume: the engine state (round, eps, pseudo-labels, inlier mask, per-round history) rides in
the base engine's full checkpoints next to both networks, optimisers, schedulers and RNG states;
checkpoint epochs count globally (``round * epochs + epoch``), so a run stopped anywhere inside a
round resumes with the same labels and eps without re-clustering.
"""
import copy
import json
import os
import os.path as osp
import time
import warnings
from typing import Dict, List, Optional

import numpy as np
import torch
import torchreid
from yacs.config import CfgNode as CN

from reid_ext import dist as rdist
from reid_ext._register import register_model
from reid_ext.checkpoint import load_file
from reid_ext.cluster import dbscan_labels, kmeans_labels, nmi
from reid_ext.core.act_net import ACTNet, act_triplet_per_sample
from reid_ext.core.clustering import cluster_purity, eps_from_distances, label_outliers
from reid_ext.core.coteaching import remember_rate, small_loss_indices
from reid_ext.core.jaccard import act_distance
from reid_ext.registry import register_engine
from reid_ext.sampler import DistributedIdentityBatchSampler, SeededDataset

from .base_engine import ReidExtEngine, _unwrap

__all__ = ['ACTEngine', 'act_resnet50', 'act_tiny', 'load_theory_checkpoint', 'act_defaults']

_COTEACHING = ('asymmetric', 'symmetric')
_CLUSTERING = ('dbscan', 'kmeans')


# ---------------------------------------------------------------------------- model factory
def _act_net(backbone: str, last_stride: int, pretrained: bool, emb_dim: int) -> ACTNet:
    from reid_ext.models.backbones import build_backbone
    bb = build_backbone(backbone, last_stride, pretrained)
    return ACTNet(bb, bb.out_channels, emb_dim)


def act_resnet50(num_classes=0, loss='triplet', pretrained=False, **kwargs):
    """ACT's network: torchvision ResNet-50, last stride 2, 2048-d embedding (no classifier)."""
    return _act_net('resnet50', kwargs.get('last_stride', 2), pretrained, 2048)


def act_tiny(num_classes=0, loss='triplet', pretrained=False, **kwargs):
    """CPU-sized ACT network (reid_ext's tiny ResNet, 256-d embedding) for demos and tests."""
    return _act_net('tiny', kwargs.get('last_stride', 2), False, 256)


register_model('act_resnet50', act_resnet50)
register_model('act_tiny', act_tiny)


def load_theory_checkpoint(net: ACTNet, path: str) -> List[str]:
    """Load an open-reid ResNet checkpoint (ACT's released "Theory" models) into ``net``.

    Key layout handled: optional ``module.`` prefix; ``base.{conv1,bn1,layer1..4}`` (open-reid's
    torchvision ResNet) -> ``backbone.body.{0,1,4..7}``; ``feat`` / ``feat_bn`` (its embedding
    FC and BN) -> ``embedding.0`` / ``embedding.1``; the classifier is dropped.

    Returns:
        list: the ``net`` keys that were not found in the file (left as initialised).
    """
    state = load_file(path)
    state = state.get('state_dict', state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f'{path}: expected a state dict (or a dict with "state_dict")')
    names = {'conv1': '0', 'bn1': '1', 'layer1': '4', 'layer2': '5', 'layer3': '6', 'layer4': '7'}
    mapped = {}
    for k, v in state.items():
        k = k[len('module.'):] if k.startswith('module.') else k
        head, _, rest = k.partition('.')
        if head == 'base':
            part, _, tail = rest.partition('.')
            if part in names:
                mapped[f'backbone.body.{names[part]}.{tail}'] = v
        elif head == 'feat':
            mapped[f'embedding.0.{rest}'] = v
        elif head == 'feat_bn':
            mapped[f'embedding.1.{rest}'] = v
    own = net.state_dict()
    bad = [k for k, v in mapped.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise ValueError(f'{path}: shapes differ from the network for {bad[:5]} (a different '
                         f'depth or embedding size?)')
    usable = {k: v for k, v in mapped.items() if k in own}
    if not any(k.startswith('backbone.') for k in usable):
        raise ValueError(f'{path}: no open-reid backbone weights (keys "base.layer1..." ) found')
    net.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


# ---------------------------------------------------------------------------- data
class _ImageList(torch.utils.data.Dataset):
    """(impath, pid, camid[, dsetid]) items read like torchreid's ImageDataset (dict samples)."""

    def __init__(self, items, transform):
        self.data = self.train = [tuple(it) + (0,) * (4 - len(it)) for it in items]
        self.transform = transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        impath, pid, camid, dsetid = self.data[i][:4]
        img = torchreid.utils.read_image(impath)
        if self.transform is not None:
            img = self.transform(img)
        return {'img': img, 'pid': pid, 'camid': camid, 'impath': impath, 'dsetid': dsetid}


def act_defaults() -> CN:
    """The ``act`` YAML node (paper values, spec section 3)."""
    n = CN()
    n.num_rounds = 10
    n.epochs = 30            # per round
    n.k1 = 20
    n.k2 = 6
    n.lam = 0.1              # weight of the source-aware term (0 = plain Jaccard)
    n.rho = 1.6e-3           # eps = mean of the smallest rho of the pairwise distances (round 0)
    n.min_samples = 4
    n.margin = 0.5
    n.remember_start = 0.2   # R_t = start + (end - start) (t + 1) / num_rounds
    n.remember_end = 1.0
    n.coteaching = 'asymmetric'  # asymmetric | symmetric
    n.clustering = 'dbscan'      # dbscan | kmeans
    n.kmeans_k = 0               # k of the k-means variant (paper: the true number of target IDs)
    n.kmeans_outlier_frac = 0.2  # asymmetric k-means: farthest-from-centre fraction = outliers
    n.theory_checkpoint = ''     # pre-adapted "Theory" (UDA_TP) checkpoint, open-reid layout
    n.grad_clamp = 0.0           # > 0: clamp gradients to [-c, c] (the release's clamp is a no-op)
    n.eval_direct = True         # evaluate the initial model before round 0 (direct transfer)
    n.eval_every_round = True
    n.seed = 1                   # k-means seed
    return n


# ---------------------------------------------------------------------------- engine
@register_engine('act', node=('act', act_defaults))
class ACTEngine(ReidExtEngine):
    """Asymmetric co-teaching (see the module docstring).

    Args:
        datamanager (ImageDataManager): built with ``load_train_targets=True``; the sources are
            the labelled domain (their features feed the source-aware term), ``train_loader_t``
            gives the unlabelled target images (their identities are used only to measure the
            pseudo-labels' purity / NMI), the test loaders evaluate.
        model (ACTNet): M. collab (ACTNet): C.
        optimizer, optimizer_c (Optimizer): their optimisers (ACT: Adam 6e-5).
        scheduler, scheduler_c (LRScheduler): their schedulers (ACT: constant), stepped per epoch.
        use_gpu (bool): Defaults to False.
        batch_size (int): P x K images per step. Defaults to 64. num_instances (int): K = 4.
        test_batch_size (int): feature extraction batch. Defaults to 128.
        workers (int): loader workers. Defaults to 0.
        num_rounds, epochs, k1, k2, lam, rho, min_samples, margin, remember_start, remember_end,
        coteaching, clustering, kmeans_k, kmeans_outlier_frac, grad_clamp, eval_direct,
        eval_every_round, seed: see :func:`act_defaults`.
    """

    def __init__(self, datamanager, model, collab, optimizer, optimizer_c, scheduler=None,
                 scheduler_c=None, use_gpu=False, batch_size=64, num_instances=4,
                 test_batch_size=128, workers=0, num_rounds=10, epochs=30, k1=20, k2=6, lam=0.1,
                 rho=1.6e-3, min_samples=4, margin=0.5, remember_start=0.2, remember_end=1.0,
                 coteaching='asymmetric', clustering='dbscan', kmeans_k=0,
                 kmeans_outlier_frac=0.2, grad_clamp=0.0, eval_direct=True,
                 eval_every_round=True, seed=1):
        super().__init__(datamanager, use_gpu)
        if coteaching not in _COTEACHING:
            raise ValueError(f'act.coteaching must be one of {_COTEACHING}, got {coteaching!r}')
        if clustering not in _CLUSTERING:
            raise ValueError(f'act.clustering must be one of {_CLUSTERING}, got {clustering!r}')
        if clustering == 'kmeans' and kmeans_k < 1:
            raise ValueError('act.clustering kmeans needs act.kmeans_k >= 1 (the paper uses the '
                             'true number of target identities)')
        if getattr(datamanager, 'train_loader_t', None) is None:
            raise ValueError('ACT needs the target training images: set data.load_train_targets '
                             'True (ImageDataManager(load_train_targets=True))')
        if num_rounds < 1 or epochs < 1:
            raise ValueError(f'act.num_rounds and act.epochs must be >= 1, got {num_rounds}, '
                             f'{epochs}')
        self.model = self.register_model('model', model, optimizer, scheduler) or model
        self.collab = self.register_model('collab', collab, optimizer_c, scheduler_c) or collab
        self.optimizer, self.scheduler = optimizer, scheduler
        self.batch_size, self.num_instances = batch_size, num_instances
        self.test_batch_size, self.workers = test_batch_size, workers
        self.num_rounds, self.epochs = num_rounds, epochs
        self.k1, self.k2, self.lam, self.rho = k1, k2, lam, rho
        self.min_samples, self.margin = min_samples, margin
        self.remember_start, self.remember_end = remember_start, remember_end
        self.coteaching, self.clustering = coteaching, clustering
        self.kmeans_k, self.kmeans_outlier_frac = kmeans_k, kmeans_outlier_frac
        self.grad_clamp = float(grad_clamp)
        self.eval_direct, self.eval_every_round = eval_direct, eval_every_round
        self.cluster_seed = seed
        self.target_items = list(datamanager.train_loader_t.dataset.train)
        self.source_items = list(datamanager.train_loader.dataset.train)
        # state saved with the checkpoints
        self.eps: Optional[float] = None
        self.labels_round = -1
        self.labels: Optional[np.ndarray] = None
        self.inlier: Optional[np.ndarray] = None
        self.round_history: List[Dict] = []
        self.round = 0
        self.rate = 1.0
        self._outlier_loader = None
        self._outlier_iter, self._outlier_next = None, None

    @classmethod
    def model_kwargs(cls, cfg) -> dict:
        """Extra factory arguments of ``act_resnet50`` / ``act_tiny``: ``model.last_stride``."""
        return {'last_stride': cfg.model.last_stride}

    @classmethod
    def from_config(cls, cfg, datamanager, model, optimizer, scheduler):
        from reid_ext.apis import build_optimizer, build_scheduler
        a = cfg.act
        net = _unwrap(model)
        if a.theory_checkpoint:
            missing = load_theory_checkpoint(net, a.theory_checkpoint)
            if rdist.is_main_process():
                print(f'=> ACT: both networks start from the Theory checkpoint '
                      f'{a.theory_checkpoint} (not in the file: {len(missing)} keys)')
        elif rdist.is_main_process():
            src = cfg.model.load_weights or 'random initialisation'
            warnings.warn(f'ACT starts from {src}, not from a "Theory" pre-adapted checkpoint '
                          f'(act.theory_checkpoint): a deviation from the paper (decision 10)')
        collab = copy.deepcopy(net)
        optimizer_c = build_optimizer(cfg, collab)
        scheduler_c = build_scheduler(cfg, optimizer_c)
        return cls(datamanager, model, collab, optimizer, optimizer_c, scheduler, scheduler_c,
                   use_gpu=cfg.use_gpu, batch_size=cfg.train.batch_size,
                   num_instances=cfg.sampler.num_instances, test_batch_size=cfg.test.batch_size,
                   workers=cfg.data.workers, num_rounds=a.num_rounds, epochs=a.epochs, k1=a.k1,
                   k2=a.k2, lam=a.lam, rho=a.rho, min_samples=a.min_samples, margin=a.margin,
                   remember_start=a.remember_start, remember_end=a.remember_end,
                   coteaching=a.coteaching, clustering=a.clustering, kmeans_k=a.kmeans_k,
                   kmeans_outlier_frac=a.kmeans_outlier_frac, grad_clamp=a.grad_clamp,
                   eval_direct=a.eval_direct, eval_every_round=a.eval_every_round, seed=a.seed)

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict:
        return {'eps': self.eps, 'labels_round': self.labels_round,
                'labels': None if self.labels is None else self.labels.copy(),
                'inlier': None if self.inlier is None else self.inlier.copy(),
                'history': copy.deepcopy(self.round_history)}

    def load_extra_state(self, state: dict) -> None:
        self.eps = state.get('eps')
        self.labels_round = int(state.get('labels_round', -1))
        self.labels, self.inlier = state.get('labels'), state.get('inlier')
        self.round_history = list(state.get('history') or [])

    # ------------------------------------------------------------------ clustering
    def _loader(self, items, transform, batch_sampler=None):
        ds = _ImageList(items, transform)
        if batch_sampler is None:
            return torch.utils.data.DataLoader(ds, batch_size=self.test_batch_size, shuffle=False,
                                               num_workers=self.workers, pin_memory=self.use_gpu)
        return torch.utils.data.DataLoader(SeededDataset(ds), batch_sampler=batch_sampler,
                                           num_workers=self.workers, pin_memory=self.use_gpu,
                                           generator=torch.Generator().manual_seed(0))

    def _features(self, items) -> torch.Tensor:
        self.set_model_mode('eval')
        return self.extract(self._loader(items, self.datamanager.transform_te))['feats']

    def cluster(self, round_idx: int) -> dict:
        """Pseudo-labels of round ``round_idx`` from M's features; returns the round's stats."""
        t0 = time.time()
        device = torch.device('cuda' if self.use_gpu else 'cpu')
        tf = self._features(self.target_items).to(device)
        truth = np.array([it[1] for it in self.target_items], dtype=np.int64)
        if self.clustering == 'dbscan':
            sf = None
            if self.lam > 0:
                sf = self._features(self.source_items).to(device)
            dist = act_distance(tf, sf, self.k1, self.k2, self.lam)
            if self.eps is None:
                self.eps = eps_from_distances(dist, self.rho)
            raw = dbscan_labels(dist, self.eps, self.min_samples)
            del dist
            inlier = raw >= 0
            if not inlier.any():
                raise RuntimeError(f'round {round_idx}: DBSCAN (eps {self.eps:.4f}) found no '
                                   f'cluster among {len(raw)} target images; raise act.rho')
            labels = label_outliers(tf, torch.from_numpy(raw)).cpu().numpy()
        else:
            labels, to_centre = kmeans_labels(tf, self.kmeans_k, self.cluster_seed + round_idx)
            raw = labels.copy()
            if self.coteaching == 'asymmetric':
                inlier = to_centre <= np.quantile(to_centre, 1.0 - self.kmeans_outlier_frac)
                raw[~inlier] = -1
            else:
                inlier = np.ones(len(labels), dtype=bool)
        self.labels, self.inlier, self.labels_round = labels.astype(np.int64), inlier, round_idx
        n_clusters = int(len(np.unique(labels[inlier])))
        stats = dict(round=round_idx, eps=self.eps, num_clusters=n_clusters,
                     num_images=int(len(labels)), outlier_frac=float(1 - inlier.mean()),
                     purity_inliers=cluster_purity(raw, truth),
                     purity_all=cluster_purity(labels, truth),
                     nmi_all=nmi(labels, truth), nmi_inliers=nmi(labels[inlier], truth[inlier]),
                     cluster_seconds=time.time() - t0)
        if rdist.is_main_process():
            print(f'=> ACT round {round_idx + 1}/{self.num_rounds}: {n_clusters} clusters, '
                  f'{stats["outlier_frac"]:.1%} outliers, eps {self.eps}, purity '
                  f'{stats["purity_inliers"]:.3f} (inliers) / {stats["purity_all"]:.3f} (all), '
                  f'NMI {stats["nmi_all"]:.3f} [{stats["cluster_seconds"]:.1f}s]')
        return stats

    # ------------------------------------------------------------------ loaders
    def _identity_sampler(self, pids, round_idx):
        world = rdist.get_world_size()
        n_ids = len(set(int(p) for p in pids))
        p = min(self.batch_size // self.num_instances, n_ids // world)
        if p < 2:
            return None
        return DistributedIdentityBatchSampler(pids, p * self.num_instances, self.num_instances,
                                               rdist.get_rank(), world,
                                               seed=self.seed * 1000 + round_idx)

    def _build_loaders(self, round_idx: int) -> bool:
        tr = self.datamanager.transform_tr
        items = [(it[0], int(lab), it[2], it[3] if len(it) > 3 else 0)
                 for it, lab in zip(self.target_items, self.labels)]
        if self.coteaching == 'symmetric':
            main = items
            outl = []
        else:
            main = [it for it, keep in zip(items, self.inlier) if keep]
            outl = [it for it, keep in zip(items, self.inlier) if not keep]
        sampler = self._identity_sampler([it[1] for it in main], round_idx)
        if sampler is None:
            warnings.warn(f'round {round_idx}: fewer than 2 pseudo-identities; no training')
            return False
        self.train_loader = self._loader(main, tr, sampler)
        self._outlier_loader, self._outlier_iter = None, None
        if outl:
            o_sampler = self._identity_sampler([it[1] for it in outl], round_idx + 500)
            if o_sampler is not None:
                self._outlier_loader = self._loader(outl, tr, o_sampler)
        return True

    def _outlier_batch(self):
        """Labelled-outlier batch number ``batch_idx // 2`` of this epoch; the outlier loader
        cycles, each cycle a fresh permutation, so the batch depends on (epoch, step) only."""
        sampler = self._outlier_loader.batch_sampler
        n = sampler.num_iters()
        j = self.batch_idx // 2
        if self._outlier_iter is None or self._outlier_next != (self.epoch, j):
            sampler.set_epoch(self.epoch * 1009 + j // n, j % n)
            self._outlier_iter = iter(self._outlier_loader)
        data = next(self._outlier_iter)
        self._outlier_next = (self.epoch, j + 1)
        if (j + 1) % n == 0:
            self._outlier_iter = None
        return data

    # ------------------------------------------------------------------ training
    def _per_sample(self, net, imgs, pids):
        with self.autocast():
            return act_triplet_per_sample(net(imgs), pids, self.margin).float()

    def _step(self, name: str, loss: torch.Tensor) -> None:
        if self.grad_clamp <= 0:
            self.optimize(loss, [name])
            return
        if self.scaler is not None and self.scaler.is_enabled():
            raise ValueError('act.grad_clamp with fp16 AMP is not supported')
        optim = self._optims[name]
        optim.zero_grad()
        loss.backward()
        for p in self._models[name].parameters():
            if p.grad is not None:
                p.grad.clamp_(-self.grad_clamp, self.grad_clamp)
        optim.step()

    def _batch(self, data):
        imgs, pids = self.parse_data_for_train(data)
        if self.use_gpu:
            imgs, pids = imgs.cuda(), pids.cuda()
        return imgs, pids

    def forward_backward(self, data) -> Dict[str, float]:
        imgs, pids = self._batch(data)
        summary = {}
        if self.coteaching == 'symmetric':
            with torch.no_grad():
                for_c = small_loss_indices(self._per_sample(self.model, imgs, pids), self.rate)
                for_m = small_loss_indices(self._per_sample(self.collab, imgs, pids), self.rate)
            loss_c = self._per_sample(self.collab, imgs[for_c], pids[for_c]).mean()
            self._step('collab', loss_c)
            loss_m = self._per_sample(self.model, imgs[for_m], pids[for_m]).mean()
            self._step('model', loss_m)
            return {'loss_c': loss_c.item(), 'loss_m': loss_m.item()}
        if self.batch_idx % 2 == 0:  # C learns from the inliers M finds easy ("pure")
            with torch.no_grad():
                keep = small_loss_indices(self._per_sample(self.model, imgs, pids), self.rate)
            if len(keep) >= 2:
                loss = self._per_sample(self.collab, imgs[keep], pids[keep]).mean()
                self._step('collab', loss)
                summary['loss_c'] = loss.item()
            return summary
        # M learns from a whole inlier batch plus the outliers C finds easy ("diverse")
        if self._outlier_loader is not None:
            o_imgs, o_pids = self._batch(self._outlier_batch())
            with torch.no_grad():
                keep = small_loss_indices(self._per_sample(self.collab, o_imgs, o_pids), self.rate)
            imgs = torch.cat([imgs, o_imgs[keep]])
            pids = torch.cat([pids, o_pids[keep]])
            summary['outliers'] = float(len(keep))
        loss = self._per_sample(self.model, imgs, pids).mean()
        self._step('model', loss)
        summary['loss_m'] = loss.item()
        return summary

    # ------------------------------------------------------------------ loop
    def _write_history(self):
        if not rdist.is_main_process() or not self.save_dir:
            return
        path = osp.join(self.save_dir, 'act_history.json')
        os.makedirs(self.save_dir, exist_ok=True)
        with open(path + '.tmp', 'w') as f:
            json.dump(self.round_history, f, indent=1)
        os.replace(path + '.tmp', path)

    def _evaluate_m(self, test_kwargs) -> dict:
        rank1 = self.test(**test_kwargs)
        res = {f'{k}_{name}': v for name, r in self.results.items() for k, v in r.items()
               if k in ('mAP', 'rank1')}
        res['rank1'] = float(rank1)
        return res

    def run(self, save_dir='log', max_epoch=0, start_epoch=0, print_freq=10, fixbase_epoch=0,
            open_layers=None, start_eval=0, eval_freq=-1, test_only=False, start_iter=0,
            stop_after_epochs: int = 0, **test_kwargs):
        """Rounds x epochs (``max_epoch``, ``start_eval`` and ``eval_freq`` are ignored: the
        schedule is ``act.num_rounds`` x ``act.epochs``, evaluation after each round).

        Args:
            start_epoch (int): global epoch (``round * epochs + epoch``) to start from (resume).
            start_iter (int): iterations of that epoch already done (resume).
            stop_after_epochs (int): return after training this many epochs in this call, with a
                checkpoint written (0 = run to the end). For tests and time-sliced jobs.
        """
        self.save_dir = save_dir
        test_kwargs['save_dir'] = save_dir
        if test_only:
            return self.test(**test_kwargs)
        total = self.num_rounds * self.epochs
        self.start_epoch, self.start_iter, self.max_epoch = start_epoch, start_iter, total
        main = rdist.is_main_process()
        if self.writer is None and main:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=save_dir)
        trained = 0
        if start_epoch == 0 and start_iter == 0 and not self.round_history and self.eval_direct:
            if main:
                print('=> ACT: direct transfer (initial model) on the target')
            self.round_history.append(dict(round=-1, **self._evaluate_m(test_kwargs)))
            self._write_history()
        for r in range(start_epoch // self.epochs, self.num_rounds):
            self.round = r
            self.rate = remember_rate(r, self.num_rounds, self.remember_start, self.remember_end)
            first = max(start_epoch - r * self.epochs, 0)
            if self.labels_round != r:
                if first or (start_iter and r == start_epoch // self.epochs):
                    raise RuntimeError(f'resuming inside round {r} needs its pseudo-labels, but '
                                       f'the checkpoint holds those of round {self.labels_round}')
                stats = self.cluster(r)
                stats['remember_rate'] = self.rate
                self.round_history.append(stats)
            can_train = self._build_loaders(r)
            for e in range(first, self.epochs):
                self.epoch = r * self.epochs + e
                if can_train:
                    self.train(print_freq=print_freq)
                else:
                    self.update_lr()
                done = self.epoch + 1
                trained += 1
                last = e + 1 == self.epochs
                if last and (self.eval_every_round or r + 1 == self.num_rounds):
                    self.round_history[-1].update(self._evaluate_m(test_kwargs))
                    self.last_rank1 = self.round_history[-1]['rank1']
                if last:
                    self._write_history()
                if (last or stop_after_epochs and trained >= stop_after_epochs
                        or self.checkpoint_period > 0 and done % self.checkpoint_period == 0):
                    self.save_checkpoint(done, 0)
                if stop_after_epochs and trained >= stop_after_epochs:
                    return self.last_rank1
        self.save_model(total - 1, self.last_rank1, save_dir)
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        return self.last_rank1

