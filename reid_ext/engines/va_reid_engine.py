"""VA-reID training engine (viewpoint-aware losses on the hypersphere).

`Viewpoint-Aware Loss with Angular Regularization for Person Re-Identification
<https://arxiv.org/abs/1912.01300>`_. Default loss (spec, decision 11):

    L = w_id * CE(s * cos_W, y) + w_view * VALSR(s * cos_U; y, v, eps=0.2)
        + w_t * Triplet(feat, y; margin 0.6) + w_vp * CE(viewpoint classifier, v_known)

with ``lsr`` = ``static`` (0.6 / 0.15) or ``adaptive`` (eps_t = 0.25 (1 - p_t)) as the official
variants, ``none`` for plain CE over identity-viewpoint classes, and ``vaal=True`` for the
angular-margin formulation at both levels (:func:`reid_ext.core.vaal_loss`, VALSR targets as
the soft viewpoint-level target when ``lsr='valsr'``). Viewpoints come from the side table
``'viewpoint'`` (file name -> 0 front / 1 side / 2 back); images without a label use the
model's fallback viewpoint classifier's prediction.
"""
import torch
import torch.nn.functional as F
import torchreid

from reid_ext.core import (adaptive_lsr_targets, soft_cross_entropy, static_direction_lsr_targets,
                           vaal_loss, valsr_targets)

from .base_engine import ReidExtEngine, _unwrap

__all__ = ['VAReIDEngine']

_LSR = ('valsr', 'static', 'adaptive', 'none')


class VAReIDEngine(ReidExtEngine):
    """Engine for :class:`reid_ext.models.VAReIDNet`.

    Args:
        datamanager (ImageDataManager): data.
        model (VAReIDNet): the model (train mode returns its output dict).
        optimizer (Optimizer): optimiser. scheduler (LRScheduler): per-epoch scheduler.
        use_gpu (bool): Defaults to False.
        side_labels (dict): must contain ``'viewpoint'`` (a :class:`SideLabels`, -1 = unknown).
        scale (float): hypersphere scale s of both cosine classifiers. Defaults to 30.
        lsr (str): ``valsr|static|adaptive|none``. Defaults to ``valsr``.
        epsilon (float): VALSR budget. Defaults to 0.2.
        weight_id (float): identity-level loss weight. Defaults to 1.
        weight_view (float): viewpoint-level loss weight. Defaults to 1.
        weight_t (float): triplet weight. Defaults to 1.
        margin (float): triplet margin. Defaults to 0.6.
        weight_vp (float): weight of the fallback viewpoint classifier's CE. Defaults to 1.
        vaal (bool): angular margins at both levels + prototype regulariser. Defaults to False.
        vaal_margin_id (float): Defaults to 0.3. vaal_margin_view (float): Defaults to 0.1.
        vaal_reg_weight (float): Defaults to 1.
    """

    def __init__(self, datamanager, model, optimizer, scheduler=None, use_gpu=False,
                 side_labels=None, scale=30.0, lsr='valsr', epsilon=0.2, weight_id=1.0,
                 weight_view=1.0, weight_t=1.0, margin=0.6, weight_vp=1.0, vaal=False,
                 vaal_margin_id=0.3, vaal_margin_view=0.1, vaal_reg_weight=1.0):
        super().__init__(datamanager, use_gpu, side_labels)
        if 'viewpoint' not in self.side_labels:
            raise ValueError("VAReIDEngine needs side_labels={'viewpoint': SideLabels(...)} (use an "
                             'empty table to rely on the fallback viewpoint classifier)')
        if lsr not in _LSR:
            raise ValueError(f'lsr must be one of {_LSR}, got {lsr!r}')
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.register_model('model', model, optimizer, scheduler)
        self.num_views = _unwrap(model).num_views
        self.scale, self.lsr, self.epsilon = scale, lsr, epsilon
        self.weight_id, self.weight_view, self.weight_t, self.weight_vp = (weight_id, weight_view,
                                                                            weight_t, weight_vp)
        self.vaal = vaal
        self.vaal_margin_id, self.vaal_margin_view = vaal_margin_id, vaal_margin_view
        self.vaal_reg_weight = vaal_reg_weight
        self.triplet = torchreid.losses.TripletLoss(margin=margin) if weight_t > 0 else None

    def _views(self, data, view_logits):
        views = self.side_label('viewpoint', data)
        known = views >= 0
        filled = torch.where(known, views, view_logits.detach().argmax(1))
        return filled, views, known

    def _view_targets(self, logits, pids, views):
        cls = pids * self.num_views + views
        if self.lsr == 'valsr':
            return valsr_targets(logits, pids, views, self.num_views, self.epsilon)
        if self.lsr == 'static':
            return static_direction_lsr_targets(logits.shape[1], pids, views, self.num_views)
        if self.lsr == 'adaptive':
            return adaptive_lsr_targets(logits, cls)
        return F.one_hot(cls, logits.shape[1]).float()

    def forward_backward(self, data):
        imgs, pids = self.parse_data_for_train(data)
        if self.use_gpu:
            imgs, pids = imgs.cuda(), pids.cuda()
        out = self.model(imgs)
        views, raw_views, known = self._views(data, out['view_logits'])
        losses = {}
        if self.vaal:
            net = _unwrap(self.model)
            cls = pids * self.num_views + views
            margin_view = self.scale * (out['view_cosine'] - self.vaal_margin_view *
                                        F.one_hot(cls, out['view_cosine'].shape[1]))
            targets = self._view_targets(margin_view, pids, views) if self.lsr != 'none' else None
            v = vaal_loss(out['id_cosine'], out['view_cosine'], pids, views, net.id_head.weight,
                          net.view_head.weight, self.num_views, self.scale, self.vaal_margin_id,
                          self.vaal_margin_view, self.vaal_reg_weight, view_targets=targets)
            losses['loss_id'] = self.weight_id * v['loss_vaal_id']
            losses['loss_view'] = self.weight_view * v['loss_vaal_view']
            losses['loss_reg'] = v['loss_vaal_reg']
        else:
            id_logits = self.scale * out['id_cosine']
            view_logits = self.scale * out['view_cosine']
            losses['loss_id'] = self.weight_id * F.cross_entropy(id_logits, pids)
            losses['loss_view'] = self.weight_view * soft_cross_entropy(
                view_logits, self._view_targets(view_logits, pids, views))
        if self.triplet is not None:
            losses['loss_t'] = self.weight_t * self.triplet(out['feat'], pids)
        if self.weight_vp > 0 and bool(known.any()):
            losses['loss_vp'] = self.weight_vp * F.cross_entropy(out['view_logits'][known],
                                                                 raw_views[known])
        loss = sum(losses.values())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        summary = {k: v.item() for k, v in losses.items()}
        summary['acc'] = torchreid.metrics.accuracy(out['id_cosine'], pids)[0].item()
        if bool(known.any()):
            pred = out['view_logits'].argmax(1)
            summary['view_acc'] = (pred[known] == raw_views[known]).float().mean().item() * 100
        return summary
