"""Build torchreid objects from a reid_ext yacs config and run them (used by tools/reid_train.py).

The engine comes from the registry (:func:`reid_ext.registry.get_engine` by ``engine.name``);
nothing here is method-specific.
"""
import glob
import os
import os.path as osp
import random
import re
import warnings

import numpy as np
import torch
import torchreid

from reid_ext import checkpoint as ckpt_io
from reid_ext import dist as rdist
from reid_ext.core import WarmupMultiStepLR
from reid_ext.registry import get_engine
from reid_ext.sampler import (DistributedIdentityBatchSampler, DistributedRandomBatchSampler,
                              SeededDataset)

__all__ = ['build_datamanager', 'build_model', 'build_optimizer', 'build_scheduler',
           'build_train_loader', 'build_engine', 'find_last_checkpoint', 'run']


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
        market1501_500k=cfg.market1501.use_500k_distractors,
        load_train_targets=cfg.data.load_train_targets, train_sampler_t=cfg.sampler.train_sampler_t,
        num_cams=cfg.sampler.num_cams, num_datasets=cfg.sampler.num_datasets)


def build_model(cfg, num_classes: int):
    """torchreid's factory entry ``model.name``.

    reid_ext models also get ``last_stride``; every model gets the engine's
    ``model_kwargs(cfg)`` (e.g. VA-reID's ``num_views``, ``head``).
    """
    from reid_ext._register import MODELS
    factory = getattr(torchreid.models, '__model_factory')
    if cfg.model.name not in factory:
        raise KeyError(f'model.name {cfg.model.name!r} is not in torchreid\'s factory; available: '
                       f'{sorted(factory)}')
    extra = dict(get_engine(cfg.engine.name).model_kwargs(cfg))
    if cfg.model.name in MODELS:
        extra.setdefault('last_stride', cfg.model.last_stride)
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


def build_engine(cfg, datamanager, model, optimizer, scheduler):
    """The engine registered as ``cfg.engine.name`` (:mod:`reid_ext.registry`), configured."""
    engine = get_engine(cfg.engine.name).from_config(cfg, datamanager, model, optimizer, scheduler)
    engine.configure(amp=cfg.train.amp, amp_dtype=cfg.train.amp_dtype, flip_test=cfg.test.flip,
                     export_features=cfg.test.export_features,
                     checkpoint_period=cfg.train.checkpoint_period,
                     checkpoint_iters=cfg.train.checkpoint_iters,
                     checkpoint_keep=cfg.train.checkpoint_keep, seed=cfg.train.seed)
    return engine


def find_last_checkpoint(save_dir: str, name: str = 'model'):
    """Path of the highest-epoch ``model.pth.tar-<epoch>`` under ``save_dir/name``, or None."""
    files = glob.glob(osp.join(save_dir, name, 'model.pth.tar-*'))
    files = [f for f in files if re.search(r'-(\d+)$', f)]
    return max(files, key=lambda f: int(re.search(r'-(\d+)$', f).group(1))) if files else None


def configure_determinism(enabled: bool) -> None:
    """torch's deterministic algorithms (needed for bit-exact GPU resume; CPU runs already are)."""
    if not enabled:
        return
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def build_train_loader(cfg, dataset, seed: int):
    """The training DataLoader: :mod:`reid_ext.sampler` batches split over the ranks.

    ``sampler.train_sampler`` ``RandomIdentitySampler`` (P x K) or ``RandomSampler``; each rank
    gets ``train.batch_size`` images per step (global batch = world_size x batch_size).

    Returns:
        DataLoader, or None for other torchreid samplers in one process (torchreid's loader is
        kept; resuming inside an epoch then needs a reid_ext sampler).
    """
    rank, world = rdist.get_rank(), rdist.get_world_size()
    items = getattr(dataset, 'train', None) or dataset.data
    name = cfg.sampler.train_sampler
    if name == 'RandomIdentitySampler':
        batches = DistributedIdentityBatchSampler([it[1] for it in items], cfg.train.batch_size,
                                                  cfg.sampler.num_instances, rank, world, seed)
    elif name == 'RandomSampler':
        batches = DistributedRandomBatchSampler(len(items), cfg.train.batch_size, rank, world, seed)
    elif world == 1:
        warnings.warn(f'sampler.train_sampler {name}: torchreid\'s loader is used; a resume '
                      f'restarts the interrupted epoch from its beginning')
        return None
    else:
        raise ValueError(f'sampler.train_sampler {name!r} has no distributed version; use '
                         f'RandomIdentitySampler or RandomSampler')
    return torch.utils.data.DataLoader(
        SeededDataset(dataset), batch_sampler=batches, num_workers=cfg.data.workers,
        pin_memory=cfg.use_gpu, generator=torch.Generator().manual_seed(seed))


def _resume_state(cfg):
    """``(path, state, legacy)`` of ``model.resume`` (``auto``: newest loadable checkpoint)."""
    resume = cfg.model.resume
    if not resume:
        return None, None, False
    if resume == 'auto':
        path, state = ckpt_io.load_latest(cfg.data.save_dir)
        if path is not None:
            return path, state, False
        legacy = find_last_checkpoint(cfg.data.save_dir)
        if legacy is None:
            if rdist.is_main_process():
                print(f'=> --resume auto: no checkpoint under {cfg.data.save_dir}; starting afresh')
            return None, None, False
        return legacy, None, True
    if not osp.isfile(resume):
        raise FileNotFoundError(f'model.resume {resume!r}: no such checkpoint file (or use auto)')
    state = ckpt_io.load_file(resume)
    if isinstance(state, dict) and 'models' in state:
        return resume, state, False
    return resume, None, True


def run(cfg, keep_distmat: bool = False):
    """Build everything from ``cfg`` and train / test (one process, or one rank under DDP).

    Args:
        cfg (CfgNode): see :func:`reid_ext.config.get_default_config`.
        keep_distmat (bool): keep the test distance matrices in ``engine.distmats``.

    Returns:
        ReidExtEngine: the engine; ``engine.results`` holds the last test's numbers.
    """
    distributed = rdist.init_distributed(cfg.use_gpu)
    rdist.DDP_KWARGS['find_unused_parameters'] = bool(cfg.train.find_unused_parameters)
    configure_determinism(cfg.train.deterministic)
    set_seed(cfg.train.seed)
    os.makedirs(cfg.data.save_dir, exist_ok=True)
    dm = build_datamanager(cfg)
    loader = build_train_loader(cfg, dm.train_loader.dataset, cfg.train.seed)
    if loader is not None:
        dm.train_loader = loader
    model = build_model(cfg, dm.num_train_pids)
    if cfg.train.sync_bn and distributed:
        if not cfg.use_gpu:
            raise ValueError('train.sync_bn needs GPUs (torch has no CPU SyncBatchNorm); set it '
                             'False for CPU runs')
        model = rdist.convert_sync_bn(model)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    start_epoch, start_iter = cfg.train.start_epoch, 0
    path, state, legacy = _resume_state(cfg)
    if legacy:
        start_epoch = torchreid.utils.resume_from_checkpoint(path, model, optimizer, scheduler)
    if distributed:
        model = rdist.wrap_ddp(model, cfg.use_gpu)
    elif cfg.use_gpu and torch.cuda.device_count() > 1:
        model = torch.nn.DataParallel(model)  # prefer tools/reid_dist_train.sh (DDP)
    engine = build_engine(cfg, dm, model, optimizer, scheduler)
    engine.keep_distmat = keep_distmat
    set_seed(cfg.train.seed + rdist.get_rank())  # per-rank streams for dropout & co.
    if state is not None:
        start_epoch, start_iter = engine.load_checkpoint(state, path)
        if rdist.is_main_process():
            print(f'=> Resumed from {path} (epoch {start_epoch}, iteration {start_iter})')
    test_only = cfg.test.evaluate or cfg.test.visrank
    engine.run(save_dir=cfg.data.save_dir, max_epoch=cfg.train.max_epoch, start_epoch=start_epoch,
               start_iter=start_iter, print_freq=cfg.train.print_freq,
               fixbase_epoch=cfg.train.fixbase_epoch, open_layers=list(cfg.train.open_layers),
               start_eval=cfg.test.start_eval, eval_freq=cfg.test.eval_freq, test_only=test_only,
               dist_metric=cfg.test.dist_metric, normalize_feature=cfg.test.normalize_feature,
               visrank=cfg.test.visrank, visrank_topk=cfg.test.visrank_topk,
               use_metric_cuhk03=cfg.cuhk03.use_metric_cuhk03, ranks=list(cfg.test.ranks),
               rerank=cfg.test.rerank)
    return engine
