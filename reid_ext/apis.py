"""Build torchreid objects from a reid_ext yacs config and run them (used by tools/reid_train.py)."""
import glob
import os
import os.path as osp
import random
import re
import warnings

import numpy as np
import torch
import torchreid

from reid_ext.core import WarmupMultiStepLR
from reid_ext.datasets.side_labels import SideLabels, load_viewpoint_labels
from reid_ext.engines import ReidSoftmaxEngine, VAReIDEngine

__all__ = ['build_datamanager', 'build_model', 'build_optimizer', 'build_scheduler',
           'build_engine', 'find_last_checkpoint', 'run']


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_datamanager(cfg):
    if cfg.data.type != 'image':
        raise ValueError(f"data.type must be 'image' (video re-ID is not supported), got {cfg.data.type!r}")
    return torchreid.data.ImageDataManager(
        root=cfg.data.root, sources=list(cfg.data.sources), targets=list(cfg.data.targets),
        height=cfg.data.height, width=cfg.data.width, transforms=list(cfg.data.transforms),
        k_tfm=cfg.data.k_tfm, norm_mean=list(cfg.data.norm_mean), norm_std=list(cfg.data.norm_std),
        use_gpu=cfg.use_gpu, split_id=cfg.data.split_id, combineall=cfg.data.combineall,
        batch_size_train=cfg.train.batch_size, batch_size_test=cfg.test.batch_size,
        workers=cfg.data.workers, num_instances=cfg.sampler.num_instances,
        train_sampler=cfg.sampler.train_sampler, cuhk03_labeled=cfg.cuhk03.labeled_images,
        cuhk03_classic_split=cfg.cuhk03.classic_split,
        market1501_500k=cfg.market1501.use_500k_distractors)


def build_model(cfg, num_classes: int):
    """torchreid's factory entry ``model.name``; reid_ext models also get last_stride/num_views."""
    from reid_ext._register import MODELS
    factory = getattr(torchreid.models, '__model_factory')
    if cfg.model.name not in factory:
        raise KeyError(f'model.name {cfg.model.name!r} is not in torchreid\'s factory; available: '
                       f'{sorted(factory)}')
    extra = {}
    if cfg.model.name in MODELS:
        extra = dict(last_stride=cfg.model.last_stride, num_views=cfg.va_reid.num_views)
    model = factory[cfg.model.name](num_classes=num_classes, loss=cfg.loss.name,
                                    pretrained=cfg.model.pretrained, use_gpu=cfg.use_gpu, **extra)
    if cfg.model.load_weights:
        torchreid.utils.load_pretrained_weights(model, cfg.model.load_weights)
    return model.cuda() if cfg.use_gpu else model


def build_optimizer(cfg, model):
    return torchreid.optim.build_optimizer(
        model, optim=cfg.train.optim, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
        momentum=cfg.sgd.momentum, sgd_dampening=cfg.sgd.dampening, sgd_nesterov=cfg.sgd.nesterov,
        rmsprop_alpha=cfg.rmsprop.alpha, adam_beta1=cfg.adam.beta1, adam_beta2=cfg.adam.beta2,
        staged_lr=cfg.train.staged_lr, new_layers=list(cfg.train.new_layers),
        base_lr_mult=cfg.train.base_lr_mult)


def build_scheduler(cfg, optimizer):
    if cfg.train.lr_scheduler == 'warmup_multi_step':
        return WarmupMultiStepLR(optimizer, list(cfg.train.stepsize), cfg.train.gamma,
                                 cfg.train.warmup_factor, cfg.train.warmup_epochs)
    stepsize = cfg.train.stepsize
    if cfg.train.lr_scheduler == 'single_step':
        stepsize = stepsize[0]
    return torchreid.optim.build_lr_scheduler(optimizer, lr_scheduler=cfg.train.lr_scheduler,
                                              stepsize=stepsize, gamma=cfg.train.gamma,
                                              max_epoch=cfg.train.max_epoch)


def viewpoint_labels(cfg, datamanager) -> SideLabels:
    """The viewpoint side table: ``va_reid.view_label_file``, else the train set's own file."""
    path = cfg.va_reid.view_label_file
    if not path:
        path = getattr(datamanager.train_loader.dataset, 'viewpoint_file', '')
    if path and osp.isfile(path):
        return SideLabels(load_viewpoint_labels(path))
    if cfg.va_reid.view_label_file:
        load_viewpoint_labels(path)  # raises the explanatory FileNotFoundError
    warnings.warn('VA-reID: no viewpoint labels found; every viewpoint comes from the untrained '
                  'fallback classifier (set va_reid.view_label_file)')
    return SideLabels({})


def build_engine(cfg, datamanager, model, optimizer, scheduler):
    if cfg.engine.name == 'softmax':
        return ReidSoftmaxEngine(
            datamanager, model, optimizer, scheduler, use_gpu=cfg.use_gpu,
            label_smooth=cfg.loss.softmax.label_smooth,
            weight_t=cfg.loss.triplet.weight_t if cfg.loss.name == 'triplet' else 0.0,
            margin=cfg.loss.triplet.margin)
    if cfg.engine.name == 'va_reid':
        v = cfg.va_reid
        return VAReIDEngine(
            datamanager, model, optimizer, scheduler, use_gpu=cfg.use_gpu,
            side_labels={'viewpoint': viewpoint_labels(cfg, datamanager)}, scale=v.scale,
            lsr=v.lsr, epsilon=v.epsilon, weight_id=v.weight_id, weight_view=v.weight_view,
            weight_t=v.weight_t, margin=v.margin, weight_vp=v.weight_vp, vaal=v.vaal,
            vaal_margin_id=v.vaal_margin_id, vaal_margin_view=v.vaal_margin_view,
            vaal_reg_weight=v.vaal_reg_weight)
    raise ValueError(f"engine.name must be 'softmax' or 'va_reid', got {cfg.engine.name!r}")


def find_last_checkpoint(save_dir: str, name: str = 'model'):
    """Path of the highest-epoch ``model.pth.tar-<epoch>`` under ``save_dir/name``, or None."""
    files = glob.glob(osp.join(save_dir, name, 'model.pth.tar-*'))
    files = [f for f in files if re.search(r'-(\d+)$', f)]
    return max(files, key=lambda f: int(re.search(r'-(\d+)$', f).group(1))) if files else None


def run(cfg, keep_distmat: bool = False):
    """Build everything from ``cfg`` and train / test.

    Args:
        cfg (CfgNode): see :func:`reid_ext.config.get_default_config`.
        keep_distmat (bool): keep the test distance matrices in ``engine.distmats``.

    Returns:
        ReidExtEngine: the engine; ``engine.results`` holds the last test's numbers.
    """
    set_seed(cfg.train.seed)
    os.makedirs(cfg.data.save_dir, exist_ok=True)
    dm = build_datamanager(cfg)
    model = build_model(cfg, dm.num_train_pids)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    start_epoch = cfg.train.start_epoch
    resume = cfg.model.resume
    if resume == 'auto':
        resume = find_last_checkpoint(cfg.data.save_dir) or ''
    if resume:
        start_epoch = torchreid.utils.resume_from_checkpoint(resume, model, optimizer, scheduler)
    if cfg.use_gpu and torch.cuda.device_count() > 1:
        model = torch.nn.DataParallel(model)  # engines unwrap it where they need the module
    engine = build_engine(cfg, dm, model, optimizer, scheduler)
    engine.keep_distmat = keep_distmat
    test_only = cfg.test.evaluate or cfg.test.visrank
    engine.run(save_dir=cfg.data.save_dir, max_epoch=cfg.train.max_epoch, start_epoch=start_epoch,
               print_freq=cfg.train.print_freq, fixbase_epoch=cfg.train.fixbase_epoch,
               open_layers=list(cfg.train.open_layers), start_eval=cfg.test.start_eval,
               eval_freq=cfg.test.eval_freq, test_only=test_only,
               dist_metric=cfg.test.dist_metric, normalize_feature=cfg.test.normalize_feature,
               visrank=cfg.test.visrank, visrank_topk=cfg.test.visrank_topk,
               use_metric_cuhk03=cfg.cuhk03.use_metric_cuhk03, ranks=list(cfg.test.ranks),
               rerank=cfg.test.rerank)
    return engine
