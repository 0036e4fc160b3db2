"""Baseline engine: identity cross-entropy (optionally label-smoothed) + optional triplet loss."""
import torchreid

from reid_ext.registry import register_engine

from .base_engine import ReidExtEngine, as_outputs

__all__ = ['ReidSoftmaxEngine']


@register_engine('softmax')
class ReidSoftmaxEngine(ReidExtEngine):
    """Softmax (and BoT-style triplet) baseline with reid_ext's evaluation and checkpoints.

    ``loss = weight_x * CE(logits, pid) + weight_t * Triplet(feat, pid)``.

    Args:
        datamanager (ImageDataManager): data.
        model (nn.Module): train mode returns logits, ``(logits, feat)`` or a dict with
            ``logits`` (and ``feat`` when ``weight_t > 0``); see :func:`as_outputs`.
        optimizer (Optimizer): optimiser. scheduler (LRScheduler): per-epoch scheduler.
        use_gpu (bool): Defaults to False.
        label_smooth (bool): label smoothing (eps 0.1, torchreid's). Defaults to True.
        weight_t (float): triplet weight; 0 disables it. Defaults to 0.
        margin (float): triplet margin. Defaults to 0.3.
        weight_x (float): cross-entropy weight. Defaults to 1.
        side_labels (dict, optional): see :class:`ReidExtEngine`.
    """

    def __init__(self, datamanager, model, optimizer, scheduler=None, use_gpu=False,
                 label_smooth=True, weight_t=0.0, margin=0.3, weight_x=1.0, side_labels=None):
        super().__init__(datamanager, use_gpu, side_labels)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.model = self.register_model('model', model, optimizer, scheduler)
        self.criterion = torchreid.losses.CrossEntropyLoss(
            num_classes=datamanager.num_train_pids, use_gpu=self.use_gpu, label_smooth=label_smooth)
        self.weight_x, self.weight_t = weight_x, weight_t
        self.triplet = torchreid.losses.TripletLoss(margin=margin) if weight_t > 0 else None

    @classmethod
    def from_config(cls, cfg, datamanager, model, optimizer, scheduler):
        triplet = cfg.loss.name == 'triplet'
        return cls(datamanager, model, optimizer, scheduler, use_gpu=cfg.use_gpu,
                   label_smooth=cfg.loss.softmax.label_smooth,
                   weight_t=cfg.loss.triplet.weight_t if triplet else 0.0,
                   margin=cfg.loss.triplet.margin,
                   weight_x=cfg.loss.triplet.weight_x if triplet else 1.0)

    def forward_loss(self, data):
        imgs, pids = self.parse_data_for_train(data)
        if self.use_gpu:
            imgs, pids = imgs.cuda(), pids.cuda()
        out = as_outputs(self.model(imgs))
        logits = out['logits']
        summary, loss = {}, 0.0
        if self.weight_x > 0:
            loss_x = self.criterion(logits.float(), pids)
            loss = loss + self.weight_x * loss_x
            summary['loss_x'] = loss_x.item()
        if self.triplet is not None:
            if 'feat' not in out:
                raise ValueError('weight_t > 0 needs a model built with loss="triplet" that returns '
                                 '(logits, features) in train mode')
            loss_t = self.triplet(out['feat'].float(), pids)
            loss = loss + self.weight_t * loss_t
            summary['loss_t'] = loss_t.item()
        summary['acc'] = torchreid.metrics.accuracy(logits, pids)[0].item()
        return loss, summary
