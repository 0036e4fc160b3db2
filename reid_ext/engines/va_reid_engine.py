"""VA-reID training engine (viewpoint-aware losses).

`Viewpoint-Aware Loss with Angular Regularization for Person Re-Identification
<https://arxiv.org/abs/1912.01300>`_. Default loss (spec, decision 11), on the BNNeck model
:class:`reid_ext.models.VAReIDNet` with plain linear heads:

    L = w_id * CE_ls(id_logits, y) + w_view * VALSR(view_logits; y, v, eps=0.2)
        + w_t * Triplet(feat, y; margin 0.6)

``lsr`` = ``static`` (0.6 / 0.15) or ``adaptive`` (eps_t = 0.25 (1 - p_t)) are the official
variants, ``none`` plain CE over identity-viewpoint classes. ``observed_pairs=True`` restricts
the identity-viewpoint classifier to the (pid, view) pairs of the training set (the official
classifier; default: all N * V pairs). ``vaal=True`` (cosine heads) uses the angular-margin
formulation at both levels (:func:`reid_ext.core.va_losses.vaal_loss`), not the default until
the paper's formula is confirmed.

Viewpoints come from label files (:func:`reid_ext.datasets.side_labels.resolve_viewpoint_labels`:
one per source dataset, merged); a training image without a label is an error naming the option
to set. Only with ``fallback_classifier=True`` may labels be missing: a viewpoint classifier on
the detached BN feature is trained on the labelled images, and its predictions fill the missing
labels only from epoch ``fallback_warmup_epochs`` on (before, unlabelled images are left out of
the viewpoint-level loss).
"""
import torch
import torch.nn.functional as F
import torchreid
from yacs.config import CfgNode as CN

from reid_ext.core.va_losses import (adaptive_lsr_targets, margin_logits, observed_pairs,
                                     soft_cross_entropy, static_direction_lsr_targets, vaal_loss,
                                     valsr_targets)
from reid_ext.datasets.side_labels import resolve_viewpoint_labels
from reid_ext.registry import register_engine

from .base_engine import ReidExtEngine, _unwrap

__all__ = ['VAReIDEngine', 'va_reid_config_node']

_LSR = ('valsr', 'static', 'adaptive', 'none')


def va_reid_config_node() -> CN:
    """Defaults of the ``va_reid`` YAML node."""
    node = CN()
    # one label file per source dataset, in the order of data.sources ('' = the dataset's own
    # file, synth-ped ships one); one file for several sources applies to all of them
    node.view_label_file = []
    node.num_views = 3
    node.head = 'auto'  # auto (cosine with vaal, else linear) | linear | cosine
    node.scale = 30.0  # hypersphere scale of cosine heads
    node.lsr = 'valsr'  # valsr | static | adaptive | none
    node.epsilon = 0.2
    node.observed_pairs = False  # classifier over the observed (pid, view) pairs only
    node.label_smooth = True  # identity CE with label smoothing (eps 0.1), as the BoT baseline
    node.weight_id = 1.0
    node.weight_view = 1.0
    node.weight_t = 1.0
    node.margin = 0.6
    node.fallback_classifier = False  # predict missing viewpoints (explicit opt-in)
    node.fallback_warmup_epochs = 5  # epochs of classifier training before its labels are used
    node.weight_vp = 1.0
    node.vaal = False
    node.vaal_margin_id = 0.3
    node.vaal_margin_view = 0.1
    node.vaal_reg_weight = 1.0
    return node


def _train_items(datamanager):
    dataset = datamanager.train_loader.dataset
    items = getattr(dataset, 'train', None)
    if items is None:
        raise ValueError('VA-reID: the training dataset has no .train list of (impath, pid, camid, '
                         'dsetid) items')
    return items


def _own_viewpoint_file(root):
    """source name -> the viewpoint file its dataset class ships ('' when none)."""
    import importlib
    table = getattr(importlib.import_module('torchreid.reid.data.datasets'), '__image_datasets')

    def lookup(name):
        fn = getattr(table.get(name), 'default_viewpoint_file', None)
        return fn(root) if fn is not None else ''

    return lookup


@register_engine('va_reid', node=('va_reid', va_reid_config_node))
class VAReIDEngine(ReidExtEngine):
    """Engine for :class:`reid_ext.models.VAReIDNet`.

    Args:
        datamanager (ImageDataManager): data.
        model (VAReIDNet): the model (train mode returns its output dict).
        optimizer (Optimizer): optimiser. scheduler (LRScheduler): per-epoch scheduler.
        use_gpu (bool): Defaults to False.
        side_labels (dict): must contain ``'viewpoint'`` (a :class:`SideLabels`, -1 = unknown).
        scale (float): scale s of cosine heads (unused by linear heads). Defaults to 30.
        lsr (str): ``valsr|static|adaptive|none``. Defaults to ``valsr``.
        epsilon (float): VALSR budget. Defaults to 0.2.
        observed_pairs (bool): identity-viewpoint classes = the (pid, view) pairs of the training
            set (set into the model's ``observed`` buffer). Defaults to False (all N * V).
        label_smooth (bool): label-smoothed identity CE (torchreid's, eps 0.1). Defaults to True.
        weight_id (float): identity-level loss weight. Defaults to 1.
        weight_view (float): viewpoint-level loss weight. Defaults to 1.
        weight_t (float): triplet weight. Defaults to 1.
        margin (float): triplet margin. Defaults to 0.6.
        fallback_classifier (bool): fill missing viewpoints with the model's viewpoint
            classifier (the model must have one). Defaults to False.
        fallback_warmup_epochs (int): epochs the classifier trains before its predictions are
            used. Defaults to 5.
        weight_vp (float): weight of the viewpoint classifier's CE. Defaults to 1.
        vaal (bool): angular margins at both levels + prototype regulariser; needs cosine heads.
            Defaults to False.
        vaal_margin_id (float): Defaults to 0.3. vaal_margin_view (float): Defaults to 0.1.
        vaal_reg_weight (float): Defaults to 1.
    """

    def __init__(self, datamanager, model, optimizer, scheduler=None, use_gpu=False,
                 side_labels=None, scale=30.0, lsr='valsr', epsilon=0.2, observed_pairs=False,
                 label_smooth=True, weight_id=1.0, weight_view=1.0, weight_t=1.0, margin=0.6,
                 fallback_classifier=False, fallback_warmup_epochs=5, weight_vp=1.0, vaal=False,
                 vaal_margin_id=0.3, vaal_margin_view=0.1, vaal_reg_weight=1.0):
        super().__init__(datamanager, use_gpu, side_labels)
        if 'viewpoint' not in self.side_labels:
            raise ValueError("VAReIDEngine needs side_labels={'viewpoint': SideLabels(...)}: set "
                             'va_reid.view_label_file (one viewpoint file per source dataset)')
        if lsr not in _LSR:
            raise ValueError(f'va_reid.lsr must be one of {_LSR}, got {lsr!r}')
        net = _unwrap(model)
        if vaal and net.head != 'cosine':
            raise ValueError('va_reid.vaal needs the cosine heads: set va_reid.head cosine (or auto)')
        if fallback_classifier and net.viewpoint_classifier is None:
            raise ValueError('va_reid.fallback_classifier needs a model built with '
                             'fallback_classifier=True (the viewpoint classifier)')
        self.num_views = net.num_views
        self._check_labels(datamanager, fallback_classifier)
        if observed_pairs:
            net.set_observed_pairs(self._observed(datamanager, net))
        self.optimizer, self.scheduler = optimizer, scheduler
        self.model = self.register_model('model', model, optimizer, scheduler)
        self.scale, self.lsr, self.epsilon = scale, lsr, epsilon
        self.observed_pairs = observed_pairs
        self.label_smooth = 0.1 if label_smooth else 0.0
        self.weight_id, self.weight_view, self.weight_t, self.weight_vp = (weight_id, weight_view,
                                                                            weight_t, weight_vp)
        self.fallback_classifier = fallback_classifier
        self.fallback_warmup_epochs = int(fallback_warmup_epochs)
        self.vaal = vaal
        self.vaal_margin_id, self.vaal_margin_view = vaal_margin_id, vaal_margin_view
        self.vaal_reg_weight = vaal_reg_weight
        self.triplet = torchreid.losses.TripletLoss(margin=margin) if weight_t > 0 else None

    # ------------------------------------------------------------------ construction
    @staticmethod
    def head_type(node) -> str:
        """``linear`` or ``cosine`` from ``va_reid.head`` (``auto``: cosine iff ``vaal``)."""
        if node.head == 'auto':
            return 'cosine' if node.vaal else 'linear'
        if node.head not in ('linear', 'cosine'):
            raise ValueError(f"va_reid.head must be 'auto', 'linear' or 'cosine', got {node.head!r}")
        return node.head

    @classmethod
    def model_kwargs(cls, cfg) -> dict:
        """Extra arguments of the ``va_reid_*`` model factories from the ``va_reid`` node."""
        v = cfg.va_reid
        return dict(num_views=v.num_views, head=cls.head_type(v),
                    fallback_classifier=v.fallback_classifier)

    @classmethod
    def from_config(cls, cfg, datamanager, model, optimizer, scheduler):
        v = cfg.va_reid
        views = resolve_viewpoint_labels(
            _train_items(datamanager), list(cfg.data.sources), v.view_label_file,
            default_file=_own_viewpoint_file(cfg.data.root),
            fallback_classifier=v.fallback_classifier)
        return cls(datamanager, model, optimizer, scheduler, use_gpu=cfg.use_gpu,
                   side_labels={'viewpoint': views}, scale=v.scale, lsr=v.lsr, epsilon=v.epsilon,
                   observed_pairs=v.observed_pairs, label_smooth=v.label_smooth,
                   weight_id=v.weight_id, weight_view=v.weight_view, weight_t=v.weight_t,
                   margin=v.margin, fallback_classifier=v.fallback_classifier,
                   fallback_warmup_epochs=v.fallback_warmup_epochs, weight_vp=v.weight_vp,
                   vaal=v.vaal, vaal_margin_id=v.vaal_margin_id,
                   vaal_margin_view=v.vaal_margin_view, vaal_reg_weight=v.vaal_reg_weight)

    def _train_views(self, datamanager):
        items = _train_items(datamanager)
        views = self.side_labels['viewpoint'].lookup([it[0] for it in items])
        return torch.tensor([int(it[1]) for it in items]), views

    def _check_labels(self, datamanager, fallback: bool) -> None:
        _, views = self._train_views(datamanager)
        known = int((views >= 0).sum())
        if known < len(views) and not fallback:
            raise ValueError(f'VA-reID: {len(views) - known} of {len(views)} training images have '
                             'no viewpoint label: set va_reid.view_label_file (one file per source '
                             'dataset) or va_reid.fallback_classifier True')
        if known == 0:
            raise ValueError('VA-reID: no training image has a viewpoint label; the fallback '
                             'classifier cannot be trained: set va_reid.view_label_file')

    def _observed(self, datamanager, net) -> torch.Tensor:
        pids, views = self._train_views(datamanager)
        return observed_pairs(pids, views, net.num_classes, net.num_views)

    # ------------------------------------------------------------------ training step
    def _view_targets(self, logits, pids, views, classes):
        if self.lsr == 'valsr':
            return valsr_targets(logits, pids, views, self.num_views, self.epsilon, classes)
        if self.lsr == 'static':
            return static_direction_lsr_targets(logits.shape[1], pids, views, self.num_views,
                                                classes=classes)
        cls = classes.index[pids, views]
        if self.lsr == 'adaptive':
            return adaptive_lsr_targets(logits, cls)
        return F.one_hot(cls, logits.shape[1]).float()

    def _views(self, data, out, pids, classes):
        """(views used by the loss, mask of samples in the viewpoint-level loss, raw labels)."""
        raw = self.side_label('viewpoint', data)
        views = raw
        if self.fallback_classifier and self.epoch >= self.fallback_warmup_epochs:
            views = torch.where(raw >= 0, raw, out['vp_logits'].detach().argmax(1))
        use = views >= 0
        if self.observed_pairs:  # a predicted viewpoint may give a pair that is not a class
            use &= classes.index[pids, views.clamp(min=0)] >= 0
        return views.clamp(min=0), use, raw

    def forward_loss(self, data):
        imgs, pids = self.parse_data_for_train(data)
        if self.use_gpu:
            imgs, pids = imgs.cuda(), pids.cuda()
        out = self.model(imgs)
        net = _unwrap(self.model)
        classes = net.pair_classes
        views, use, raw = self._views(data, out, pids, classes)
        id_scores, view_scores = out['id_scores'].float(), out['view_scores'].float()
        losses = {}
        if self.vaal:
            p, v = pids[use], views[use]
            targets = None
            if self.lsr != 'none':  # VALSR "softens the hard margin" of the viewpoint level
                margin_view = margin_logits(view_scores[use], classes.index[p, v], self.scale,
                                            self.vaal_margin_view)
                targets = self._view_targets(margin_view, p, v, classes)
            terms = vaal_loss(id_scores[use], view_scores[use], p, v, net.id_head.weight,
                              net.view_weight, self.num_views, self.scale, self.vaal_margin_id,
                              self.vaal_margin_view, self.vaal_reg_weight, view_targets=targets,
                              classes=classes)
            if not bool(use.all()):  # identity level on every sample
                terms['loss_vaal_id'] = F.cross_entropy(
                    margin_logits(id_scores, pids, self.scale, self.vaal_margin_id), pids)
            losses['loss_id'] = self.weight_id * terms['loss_vaal_id']
            losses['loss_view'] = (self.weight_view * terms['loss_vaal_view'] if bool(use.any())
                                   else 0.0 * view_scores.sum())
            losses['loss_reg'] = terms['loss_vaal_reg']
        else:
            if net.head == 'cosine':
                id_scores, view_scores = self.scale * id_scores, self.scale * view_scores
            losses['loss_id'] = self.weight_id * F.cross_entropy(
                id_scores, pids, label_smoothing=self.label_smooth)
            if bool(use.any()):
                logits = view_scores[use]
                losses['loss_view'] = self.weight_view * soft_cross_entropy(
                    logits, self._view_targets(logits, pids[use], views[use], classes))
            else:  # keep every parameter in the graph (DDP)
                losses['loss_view'] = 0.0 * view_scores.sum()
        if self.triplet is not None:
            losses['loss_t'] = self.weight_t * self.triplet(out['feat'].float(), pids)
        known = raw >= 0
        if self.fallback_classifier:
            vp = out['vp_logits'].float()
            losses['loss_vp'] = (self.weight_vp * F.cross_entropy(vp[known], raw[known])
                                 if bool(known.any()) else 0.0 * vp.sum())
        loss = sum(losses.values())
        summary = {k: v.item() for k, v in losses.items()}
        summary['acc'] = torchreid.metrics.accuracy(out['id_scores'], pids)[0].item()
        if self.fallback_classifier and bool(known.any()):
            pred = out['vp_logits'].argmax(1)
            summary['view_acc'] = (pred[known] == raw[known]).float().mean().item() * 100
        return loss, summary
