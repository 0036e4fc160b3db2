"""Baseline engine: identity cross-entropy (optionally label-smoothed) + optional triplet loss."""
import torchreid

from .base_engine import ReidExtEngine

__all__ = ['ReidSoftmaxEngine']


class ReidSoftmaxEngine(ReidExtEngine):
    """Softmax (and BoT-style triplet) baseline with reid_ext's evaluation and checkpoints.

    Args:
        datamanager (ImageDataManager): data.
        model (nn.Module): train mode returns logits, or ``(logits, feat)`` when
            ``weight_t > 0`` (build it with ``loss='triplet'``).
        optimizer (Optimizer): optimiser. scheduler (LRScheduler): per-epoch scheduler.
        use_gpu (bool): Defaults to False.
        label_smooth (bool): label smoothing (eps 0.1, torchreid's). Defaults to True.
        weight_t (float): triplet weight; 0 disables it. Defaults to 0.
        margin (float): triplet margin. Defaults to 0.3.
        side_labels (dict, optional): see :class:`ReidExtEngine`.
    """

    def __init__(self, datamanager, model, optimizer, scheduler=None, use_gpu=False,
                 label_smooth=True, weight_t=0.0, margin=0.3, side_labels=None):
        super().__init__(datamanager, use_gpu, side_labels)
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.register_model('model', model, optimizer, scheduler)
        self.criterion = torchreid.losses.CrossEntropyLoss(
            num_classes=datamanager.num_train_pids, use_gpu=self.use_gpu, label_smooth=label_smooth)
        self.weight_t = weight_t
        self.triplet = torchreid.losses.TripletLoss(margin=margin) if weight_t > 0 else None

    def forward_backward(self, data):
        imgs, pids = self.parse_data_for_train(data)
        if self.use_gpu:
            imgs, pids = imgs.cuda(), pids.cuda()
        out = self.model(imgs)
        logits, feat = out if isinstance(out, tuple) else (out, None)
        loss_x = self.criterion(logits, pids)
        summary = {'loss_x': loss_x.item()}
        loss = loss_x
        if self.triplet is not None:
            if feat is None:
                raise ValueError('weight_t > 0 needs a model built with loss="triplet" that returns '
                                 '(logits, features) in train mode')
            loss_t = self.triplet(feat, pids)
            loss = loss + self.weight_t * loss_t
            summary['loss_t'] = loss_t.item()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        summary['acc'] = torchreid.metrics.accuracy(logits, pids)[0].item()
        return summary
