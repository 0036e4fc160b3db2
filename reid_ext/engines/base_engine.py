"""Base engine of reid_ext: torchreid's template plus DDP, mixed precision, exact resume and an
evaluation split into overridable steps.

What a method engine writes (see :class:`ReidExtEngine` and ``/reid_ext/registry.py``):

- ``__init__``: ``super().__init__(datamanager, use_gpu, side_labels)``, then
  ``self.model = self.register_model(name, model, optimizer, scheduler)`` per network (use the
  returned, possibly DDP-wrapped, model; ``optimizer`` / ``scheduler`` may be ``None`` for frozen
  helpers);
- ``forward_loss(data) -> (loss, summary)``: the base runs it under autocast and does the
  (scaled) backward and optimiser steps; an engine with several optimisation steps per batch
  overrides ``forward_backward`` and uses :meth:`autocast` and :meth:`optimize` itself;
- optional: ``extra_state()`` / ``load_extra_state(state)`` for method state that a resume must
  restore; ``extract_batch`` / ``compute_distance`` / ``compute_metrics`` for custom retrieval;
- ``from_config(cfg, datamanager, model, optimizer, scheduler)`` for the registry.
"""
import datetime
import os
import os.path as osp
import shutil
import time
import warnings
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
import torchreid

from reid_ext import checkpoint as ckpt_io
from reid_ext import dist as rdist
from reid_ext.core import evaluate_rank_fast
from reid_ext.datasets.side_labels import SideLabels
from reid_ext.sampler import ShardedBatchSampler

__all__ = ['ReidExtEngine', 'as_outputs']

CHECKPOINT_FORMAT = 'reid_ext/2'


def _unwrap(model):
    return rdist.unwrap_model(model)


def as_outputs(out) -> dict:
    """The model output convention: a train-mode forward becomes a dict.

    - a tensor (torchreid ``loss='softmax'`` models) -> ``{'logits': out}``;
    - a tuple ``(logits, feat)`` (torchreid ``loss='triplet'`` models) ->
      ``{'logits': logits, 'feat': feat}``;
    - a dict is returned as is. Reserved keys: ``logits`` (B, num_classes) identity logits,
      ``feat`` (B, D) metric-learning (triplet) feature; a method adds its own keys.

    In eval mode every model returns the retrieval feature (B, D) (torchreid's contract).
    """
    if isinstance(out, dict):
        return out
    if isinstance(out, torch.Tensor):
        return {'logits': out}
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return {'logits': out[0], 'feat': out[1]}
    raise TypeError(f'model output must be a tensor, a (logits, feat) tuple or a dict, got '
                    f'{type(out).__name__}')


class ReidExtEngine(torchreid.engine.Engine):
    """``torchreid.engine.Engine`` with the machinery every reid_ext engine shares.

    Training: :meth:`run` / :meth:`train` replace torchreid's loops. Batches come from the
    train loader's ``set_epoch``-able batch sampler (:mod:`reid_ext.sampler`, identical on
    every rank); under DDP only rank 0 prints, writes tensorboard and checkpoints. Mixed
    precision (:meth:`configure`): fp16 autocast + ``GradScaler`` on GPU, bfloat16 autocast on
    CPU. Full checkpoints every ``checkpoint_period`` epochs and every ``checkpoint_iters``
    iterations (:meth:`save_checkpoint`), independent of evaluation; :meth:`load_checkpoint`
    restores everything for an exact resume.

    Evaluation: :meth:`test` -> per target :meth:`_evaluate` = :meth:`extract` (query, gallery;
    batches shared out to the ranks and gathered back in dataset order, each batch by
    :meth:`extract_batch`) -> :meth:`compute_distance` -> :meth:`compute_metrics`
    (:func:`reid_ext.core.evaluate_rank_fast`, torchreid's numbers) -> print, visrank and
    feature export. Results go to :attr:`results` (``dataset -> {'mAP', 'rank1', 'cmc'}``,
    Python floats).

    Args:
        datamanager (ImageDataManager): torchreid data manager.
        use_gpu (bool): Defaults to False.
        side_labels (dict, optional): name -> :class:`SideLabels` (per-image labels looked up
            from the batch's ``impath`` with :meth:`side_label`).
    """

    def __init__(self, datamanager, use_gpu: bool = False,
                 side_labels: Optional[Dict[str, SideLabels]] = None):
        super().__init__(datamanager, use_gpu)
        self._requires_grad: Dict[str, Dict[str, bool]] = {}
        self.side_labels: Dict[str, SideLabels] = dict(side_labels or {})
        self.results: Dict[str, dict] = {}
        #: set True to keep each target's (Q, G) distance matrix in :attr:`distmats` after a test
        self.keep_distmat = False
        self.distmats: Dict[str, np.ndarray] = {}
        self.amp, self.amp_dtype, self.scaler = False, None, None
        self.flip_test = False
        self.export_features = ''
        self.checkpoint_period, self.checkpoint_iters, self.checkpoint_keep = 1, 0, 3
        self.seed = 0
        self.epoch, self.start_epoch, self.max_epoch = 0, 0, 0
        self.start_iter = 0
        self.save_dir = ''
        self.last_rank1 = 0.0
        self.history: List[dict] = []

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg, datamanager, model, optimizer, scheduler):
        """Build the engine from a yacs config (the registry calls this).

        The default passes the common arguments only; an engine with options overrides it and
        reads its own YAML node.
        """
        return cls(datamanager, model, optimizer, scheduler, use_gpu=cfg.use_gpu)

    @classmethod
    def model_kwargs(cls, cfg) -> dict:
        """Extra keyword arguments of the model factory call (``apis.build_model``) that this
        engine needs, read from its YAML node. Defaults to none."""
        return {}

    def configure(self, amp: bool = False, amp_dtype: str = 'auto', flip_test: bool = False,
                  export_features: str = '', checkpoint_period: int = 1,
                  checkpoint_iters: int = 0, checkpoint_keep: int = 3, seed: int = 0) -> None:
        """Runtime options shared by all engines (``apis.run`` calls this from the config).

        Args:
            amp (bool): mixed precision. Defaults to False.
            amp_dtype (str): ``auto`` (fp16 on GPU, bfloat16 on CPU), ``float16`` or
                ``bfloat16``. fp16 uses a ``GradScaler``. Defaults to ``auto``.
            flip_test (bool): average features of each test image and its mirror image.
            export_features (str): npz path for the test features ('' = none).
            checkpoint_period (int): full checkpoint every N epochs (0 = only at the end).
            checkpoint_iters (int): also every N iterations inside an epoch (0 = never).
            checkpoint_keep (int): resume checkpoints kept (>= 1).
            seed (int): seed of the sampler's per-epoch permutations.
        """
        if amp_dtype not in ('auto', 'float16', 'bfloat16'):
            raise ValueError(f"train.amp_dtype must be 'auto', 'float16' or 'bfloat16', got "
                             f'{amp_dtype!r}')
        if checkpoint_keep < 1:
            raise ValueError(f'train.checkpoint_keep must be >= 1, got {checkpoint_keep}')
        self.amp = bool(amp)
        device = 'cuda' if self.use_gpu else 'cpu'
        if amp_dtype == 'auto':
            amp_dtype = 'float16' if self.use_gpu else 'bfloat16'
        self.amp_dtype = getattr(torch, amp_dtype)
        self.scaler = torch.amp.GradScaler(device, enabled=self.amp and
                                           self.amp_dtype == torch.float16)
        self.flip_test, self.export_features = bool(flip_test), export_features
        self.checkpoint_period, self.checkpoint_iters = int(checkpoint_period), int(checkpoint_iters)
        self.checkpoint_keep, self.seed = int(checkpoint_keep), int(seed)

    def register_model(self, name='model', model=None, optim=None, sched=None):
        """Register a network (torchreid's), wrapped in DDP when distributed; returns the model.

        ``optim`` and ``sched`` may be ``None`` (frozen helpers: no DDP, nothing to step).
        """
        if self.__dict__.get('_models') is None:
            raise AttributeError('call super().__init__() before register_model')
        if optim is not None:
            model = rdist.wrap_ddp(model, self.use_gpu)
        super().register_model(name, model, optim, sched)
        self._requires_grad[name] = {n: p.requires_grad for n, p in
                                     _unwrap(model).named_parameters()}
        return model

    def side_label(self, name: str, data: dict) -> torch.Tensor:
        """(B,) int64 side labels ``name`` of a batch (``missing`` value where unknown)."""
        if name not in self.side_labels:
            raise KeyError(f'no side labels {name!r}; available: {sorted(self.side_labels)}')
        labels = self.side_labels[name].lookup(data['impath'])
        return labels.cuda() if self.use_gpu else labels

    def two_stepped_transfer_learning(self, epoch, fixbase_epoch, open_layers, model=None):
        """torchreid's fixbase epochs, without its ``open_all_layers`` afterwards.

        torchreid sets ``requires_grad=True`` on *every* parameter each epoch once the fixbase
        epochs are over (always, with ``fixbase_epoch=0``), which trains parameters a model froze
        on purpose (BNNeck's BN bias) and, under DDP, parameters whose gradients DDP does not
        reduce (the ranks drift apart). Here the flags the model was registered with come back
        instead.
        """
        model = model if model is not None else self.model
        names = [n for n in self.get_model_names() if self._models[n] is model] or ['model']
        net = _unwrap(model)
        if fixbase_epoch > 0 and open_layers and epoch + 1 <= fixbase_epoch:
            if rdist.is_main_process():
                print(f'* Only train {open_layers} (epoch: {epoch + 1}/{fixbase_epoch})')
            torchreid.utils.open_specified_layers(net, open_layers)
            return
        flags = self._requires_grad.get(names[0], {})
        for n, p in net.named_parameters():
            p.requires_grad_(flags.get(n, True))

    # ------------------------------------------------------------------ training step
    def autocast(self):
        """Autocast context of the forward pass (a no-op without ``amp``)."""
        if not self.amp:
            return nullcontext()
        return torch.autocast('cuda' if self.use_gpu else 'cpu', dtype=self.amp_dtype)

    def optimize(self, loss: torch.Tensor, names: Optional[Sequence[str]] = None) -> None:
        """Zero the gradients, backward ``loss`` (scaled under fp16) and step the optimisers of
        the registered models ``names`` (all with an optimiser by default)."""
        names = self.get_model_names(list(names) if names is not None else None)
        optims = [self._optims[n] for n in names if self._optims[n] is not None]
        for o in optims:
            o.zero_grad()
        if self.scaler is not None and self.scaler.is_enabled():
            self.scaler.scale(loss).backward()
            for o in optims:
                self.scaler.step(o)
            self.scaler.update()
        else:
            loss.backward()
            for o in optims:
                o.step()

    def forward_loss(self, data) -> Tuple[torch.Tensor, Dict[str, float]]:
        """The batch's total loss and a summary of floats (runs under :meth:`autocast`)."""
        raise NotImplementedError(f'{type(self).__name__} must implement forward_loss(data) -> '
                                  '(loss, summary) or override forward_backward(data)')

    def forward_backward(self, data) -> Dict[str, float]:
        with self.autocast():
            loss, summary = self.forward_loss(data)
        self.optimize(loss)
        return summary

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict:
        """Method state a resume must restore (beyond models, optimisers, schedulers, scaler,
        sampler position and RNG states). Override together with :meth:`load_extra_state`."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what :meth:`extra_state` returned."""

    def save_checkpoint(self, epoch: int, it: int = 0) -> Optional[str]:
        """Write the full training state after ``epoch`` completed epochs and ``it`` iterations.

        Contents: ``format``, ``epoch``, ``iter``, ``world_size``, ``models`` / ``optimizers`` /
        ``schedulers`` (name -> state_dict or None), ``scaler``, ``sampler`` (seed, epoch,
        start_iter), ``rng`` (one entry per rank), ``engine`` (:meth:`extra_state`), and, for
        torchreid's loaders, ``state_dict`` (the first model's) and ``rank1``. Collective under
        DDP (RNG states are gathered); rank 0 writes.

        Returns:
            str: the path on rank 0, else None.
        """
        rng = rdist.all_gather_object(ckpt_io.rng_state())
        for name in self.get_model_names():
            rdist.broadcast_buffers(self._models[name])
        if not rdist.is_main_process():
            return None
        names = self.get_model_names()
        state = {
            'format': CHECKPOINT_FORMAT, 'epoch': int(epoch), 'iter': int(it),
            'world_size': rdist.get_world_size(),
            'models': {n: _unwrap(self._models[n]).state_dict() for n in names},
            'optimizers': {n: o.state_dict() if o is not None else None
                           for n, o in self._optims.items()},
            'schedulers': {n: s.state_dict() if s is not None else None
                           for n, s in self._scheds.items()},
            'scaler': self.scaler.state_dict() if self.scaler is not None else None,
            'sampler': {'seed': self.seed, 'epoch': int(epoch), 'start_iter': int(it)},
            'rng': rng, 'engine': self.extra_state(), 'rank1': float(self.last_rank1),
        }
        state['state_dict'] = state['models'][names[0]]
        path = ckpt_io.checkpoint_path(self.save_dir, epoch, it)
        ckpt_io.save_atomic(state, path)
        for old in ckpt_io.list_checkpoints(self.save_dir)[:-self.checkpoint_keep]:
            os.remove(old)
        return path

    def load_checkpoint(self, state: dict, path: str = '') -> Tuple[int, int]:
        """Restore a full checkpoint (see :meth:`save_checkpoint`) into this engine.

        Returns:
            tuple: ``(start_epoch, start_iter)`` to pass to :meth:`run`.
        """
        if state.get('format') != CHECKPOINT_FORMAT:
            raise ValueError(f'{path}: not a {CHECKPOINT_FORMAT} checkpoint')
        for what, table in (('models', self._models), ('optimizers', self._optims)):
            missing = sorted(set(table) - set(state[what]))
            if missing:
                raise KeyError(f'{path}: no {what} entry for the registered {missing}; it was '
                               f'written by an engine with {sorted(state[what])}')
        for n in self.get_model_names():
            _unwrap(self._models[n]).load_state_dict(state['models'][n])
            if self._optims[n] is not None and state['optimizers'][n] is not None:
                self._optims[n].load_state_dict(state['optimizers'][n])
            sched = state['schedulers'].get(n)
            if self._scheds[n] is not None and sched is not None:
                self._scheds[n].load_state_dict(sched)
        if self.scaler is not None and state.get('scaler'):
            self.scaler.load_state_dict(state['scaler'])
        if state['sampler']['seed'] != self.seed:
            warnings.warn(f'{path}: written with train.seed {state["sampler"]["seed"]}, running '
                          f'with {self.seed}: the resumed run follows the new seed')
        self.load_extra_state(state.get('engine') or {})
        rank, world = rdist.get_rank(), rdist.get_world_size()
        if state['world_size'] != world:
            warnings.warn(f'{path}: written by {state["world_size"]} process(es), resumed by '
                          f'{world}: training continues, but not bit-exactly')
        ckpt_io.set_rng_state(state['rng'][rank % len(state['rng'])])
        self.last_rank1 = float(state.get('rank1', 0.0))
        return int(state['epoch']), int(state['iter'])

    def save_model(self, epoch, rank1, save_dir, is_best=False):
        """torchreid-format files ``save_dir/<name>/model.pth.tar-<epoch+1>`` (rank 0 only).

        Python floats only (loadable with ``weights_only=True``), a ``None`` optimiser or
        scheduler is allowed, written atomically.
        """
        if not rdist.is_main_process():
            return
        for name in self.get_model_names():
            optim, sched = self._optims[name], self._scheds[name]
            state = {
                'state_dict': _unwrap(self._models[name]).state_dict(),
                'epoch': int(epoch) + 1,
                'rank1': float(rank1),
                'optimizer': optim.state_dict() if optim is not None else None,
                'scheduler': sched.state_dict() if sched is not None else None,
            }
            out_dir = osp.join(save_dir, name)
            fpath = osp.join(out_dir, f'model.pth.tar-{int(epoch) + 1}')
            ckpt_io.save_atomic(state, fpath)
            print(f'Checkpoint saved to "{fpath}"')
            if is_best:
                shutil.copy(fpath, osp.join(out_dir, 'model-best.pth.tar'))

    # ------------------------------------------------------------------ loops
    def run(self, save_dir='log', max_epoch=0, start_epoch=0, print_freq=10, fixbase_epoch=0,
            open_layers=None, start_eval=0, eval_freq=-1, test_only=False, start_iter=0,
            **test_kwargs):
        """torchreid's ``run`` with interval checkpoints and mid-epoch restarts.

        Args (beyond torchreid's): start_iter (int): iterations of ``start_epoch`` already done
        (resume). ``test_kwargs`` go to :meth:`test` (``dist_metric``, ``normalize_feature``,
        ``visrank``, ``visrank_topk``, ``use_metric_cuhk03``, ``ranks``, ``rerank``).
        """
        self.save_dir = save_dir
        test_kwargs['save_dir'] = save_dir
        if test_kwargs.get('visrank') and not test_only:
            raise ValueError('visrank can be set to True only if test_only=True')
        if test_only:
            return self.test(**test_kwargs)
        main = rdist.is_main_process()
        if self.writer is None and main:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=save_dir)
        time_start = time.time()
        self.start_epoch, self.max_epoch, self.start_iter = start_epoch, max_epoch, start_iter
        if main:
            print(f'=> Start training (epoch {start_epoch + 1}'
                  + (f', iteration {start_iter + 1}' if start_iter else '') + ')')
        for self.epoch in range(start_epoch, max_epoch):
            self.train(print_freq=print_freq, fixbase_epoch=fixbase_epoch, open_layers=open_layers)
            done = self.epoch + 1
            if (done >= start_eval and eval_freq > 0 and done % eval_freq == 0
                    and done != max_epoch):
                self.last_rank1 = self.test(**test_kwargs)
                self.save_model(self.epoch, self.last_rank1, save_dir)
                if self.writer is not None:
                    self.writer.add_scalar('Test/rank1', self.last_rank1, self.epoch)
            if done == max_epoch or (self.checkpoint_period > 0
                                     and done % self.checkpoint_period == 0):
                self.save_checkpoint(done, 0)
        if max_epoch > 0 and start_epoch < max_epoch:
            if main:
                print('=> Final test')
            self.last_rank1 = self.test(**test_kwargs)
            self.save_model(max_epoch - 1, self.last_rank1, save_dir)
            if self.writer is not None:
                self.writer.add_scalar('Test/rank1', self.last_rank1, max_epoch - 1)
        if main:
            print(f'Elapsed {datetime.timedelta(seconds=round(time.time() - time_start))}')
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        return self.last_rank1

    def train(self, print_freq=10, fixbase_epoch=0, open_layers=None):
        """One epoch (from :attr:`start_iter` when resuming inside it), then the LR step."""
        losses = torchreid.utils.MetricMeter()
        batch_time, data_time = torchreid.utils.AverageMeter(), torchreid.utils.AverageMeter()
        self.set_model_mode('train')
        self.two_stepped_transfer_learning(self.epoch, fixbase_epoch, open_layers)
        start = self.start_iter if self.epoch == self.start_epoch else 0
        sampler = getattr(self.train_loader, 'batch_sampler', None)
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(self.epoch, start)
            self.num_batches = sampler.num_iters()
        else:
            if start:
                raise RuntimeError('resuming inside an epoch needs a reid_ext batch sampler')
            self.num_batches = len(self.train_loader)
        main = rdist.is_main_process()
        end = time.time()
        for self.batch_idx, data in enumerate(self.train_loader, start):
            data_time.update(time.time() - end)
            loss_summary = self.forward_backward(data)
            batch_time.update(time.time() - end)
            losses.update(loss_summary)
            done = self.batch_idx + 1
            if main and done % print_freq == 0:
                left = (self.num_batches - done
                        + (self.max_epoch - (self.epoch + 1)) * self.num_batches)
                eta = str(datetime.timedelta(seconds=int(batch_time.avg * left)))
                print(f'epoch: [{self.epoch + 1}/{self.max_epoch}][{done}/{self.num_batches}]\t'
                      f'time {batch_time.val:.3f} ({batch_time.avg:.3f})\t'
                      f'data {data_time.val:.3f} ({data_time.avg:.3f})\teta {eta}\t'
                      f'{losses}\tlr {self.get_current_lr():.6f}')
            if self.writer is not None:
                n_iter = self.epoch * self.num_batches + self.batch_idx
                for name, meter in losses.meters.items():
                    self.writer.add_scalar('Train/' + name, meter.avg, n_iter)
                self.writer.add_scalar('Train/lr', self.get_current_lr(), n_iter)
            if (self.checkpoint_iters > 0 and done % self.checkpoint_iters == 0
                    and done < self.num_batches):
                self.save_checkpoint(self.epoch, done)
            end = time.time()
        #: per-epoch mean of every summary term (rank-local); :attr:`history` keeps all epochs
        self.epoch_losses = {k: m.avg for k, m in losses.meters.items()}
        self.history.append(dict(self.epoch_losses, epoch=self.epoch + 1))
        self.update_lr()

    # ------------------------------------------------------------------ evaluation
    def test(self, epoch=None, dist_metric='euclidean', normalize_feature=False, visrank=False,
             visrank_topk=10, save_dir='', use_metric_cuhk03=False, ranks=(1, 5, 10, 20),
             rerank=False, **kwargs):
        """Evaluate on every target; returns the last target's rank-1 (torchreid's contract)."""
        for name in self.get_model_names():
            rdist.broadcast_buffers(self._models[name])  # one set of BN statistics for all ranks
        self.set_model_mode('eval')
        rank1 = 0.0
        for name in list(self.test_loader.keys()):
            if rdist.is_main_process():
                domain = 'source' if name in self.datamanager.sources else 'target'
                print(f'##### Evaluating {name} ({domain}) #####')
            rank1, _ = self._evaluate(
                dataset_name=name, query_loader=self.test_loader[name]['query'],
                gallery_loader=self.test_loader[name]['gallery'], dist_metric=dist_metric,
                normalize_feature=normalize_feature, visrank=visrank, visrank_topk=visrank_topk,
                save_dir=save_dir or self.save_dir, use_metric_cuhk03=use_metric_cuhk03,
                ranks=ranks, rerank=rerank)
        return rank1

    def _shard(self, loader):
        """This rank's share of a sequential test loader's batches (same batches as 1 process)."""
        sampler = ShardedBatchSampler(len(loader.dataset), loader.batch_size, rdist.get_rank(),
                                      rdist.get_world_size())
        shard = torch.utils.data.DataLoader(
            loader.dataset, batch_sampler=sampler, num_workers=loader.num_workers,
            pin_memory=loader.pin_memory, collate_fn=loader.collate_fn,
            generator=torch.Generator().manual_seed(0))  # never touches the global torch RNG
        return sampler.batch_ids, shard

    def extract_features(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, D) retrieval features of a batch (the unwrapped model in eval mode)."""
        return _unwrap(self.model)(imgs)

    @torch.no_grad()
    def extract_batch(self, data) -> Dict[str, object]:
        """Per-batch outputs of evaluation (step 1): ``feats`` (B, D) CPU float tensor, ``pids``
        and ``camids`` (B,) int64 arrays, ``paths`` (list of str). Flip averaging when
        :attr:`flip_test`. An engine adds keys (list-valued labels, extra features) here."""
        imgs, pids, camids = self.parse_data_for_eval(data)
        if self.use_gpu:
            imgs = imgs.cuda()
        feats = self.extract_features(imgs)
        if self.flip_test:
            feats = (feats + self.extract_features(imgs.flip(3))) / 2
        return {'feats': feats.float().cpu(), 'pids': np.asarray(pids, dtype=np.int64),
                'camids': np.asarray(camids, dtype=np.int64), 'paths': list(data['impath'])}

    @torch.no_grad()
    def extract(self, loader) -> Dict[str, object]:
        """Outputs of :meth:`extract_batch` over a whole test loader, in dataset order.

        Under DDP every rank computes every ``world_size``-th batch and all ranks receive the
        concatenation, so the result equals the single-process one bit for bit.
        """
        ids, shard = self._shard(loader)
        return rdist.gather_batches([(b, self.extract_batch(data)) for b, data in zip(ids, shard)])

    def compute_distance(self, query: dict, gallery: dict, dist_metric='euclidean',
                         normalize_feature=False, rerank=False) -> np.ndarray:
        """(Q, G) distance matrix (step 2); override for query-conditioned re-scoring."""
        qf, gf = query['feats'], gallery['feats']
        if normalize_feature:
            qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
        distmat = torchreid.metrics.compute_distance_matrix(qf, gf, dist_metric)
        if rerank:
            qq = torchreid.metrics.compute_distance_matrix(qf, qf, dist_metric)
            gg = torchreid.metrics.compute_distance_matrix(gf, gf, dist_metric)
            return np.asarray(torchreid.utils.re_ranking(distmat.numpy(), qq.numpy(), gg.numpy()))
        return distmat.numpy()

    def compute_metrics(self, distmat: np.ndarray, query: dict, gallery: dict,
                        use_metric_cuhk03=False) -> dict:
        """Step 3: ``{'mAP', 'rank1', 'cmc'}`` (Python floats); override for other protocols
        (list-valued gallery labels, top-k protocols)."""
        cmc, mAP = evaluate_rank_fast(distmat, query['pids'], gallery['pids'], query['camids'],
                                      gallery['camids'], use_metric_cuhk03=use_metric_cuhk03)
        return dict(mAP=float(mAP), rank1=float(cmc[0]), cmc=[float(x) for x in cmc])

    def export_path(self, dataset_name: str) -> str:
        path = self.export_features
        if len(self.test_loader) > 1 or not path.endswith('.npz'):
            stem = path[:-4] if path.endswith('.npz') else path
            path = f'{stem}_{dataset_name}.npz'
        return path

    def save_features(self, path: str, query: dict, gallery: dict) -> None:
        """npz: ``{query,gallery}_{features,paths,pids,camids}`` (rank 0, atomic)."""
        if not rdist.is_main_process():
            return
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        tmp = path[:-4] + '.tmp.npz'
        arrays = {}
        for split, out in (('query', query), ('gallery', gallery)):
            arrays[f'{split}_features'] = out['feats'].numpy()
            arrays[f'{split}_paths'] = np.asarray(out['paths'], dtype=str)
            arrays[f'{split}_pids'] = np.asarray(out['pids'])
            arrays[f'{split}_camids'] = np.asarray(out['camids'])
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        print(f'Features saved to "{path}"')

    @torch.no_grad()
    def _evaluate(self, dataset_name='', query_loader=None, gallery_loader=None,
                  dist_metric='euclidean', normalize_feature=False, visrank=False, visrank_topk=10,
                  save_dir='', use_metric_cuhk03=False, ranks=(1, 5, 10, 20), rerank=False,
                  **kwargs):
        """extract -> compute_distance -> compute_metrics for one target; (rank1, mAP)."""
        main = rdist.is_main_process()
        t = time.time()
        query, gallery = self.extract(query_loader), self.extract(gallery_loader)
        t_feat = time.time() - t
        if self.export_features:
            self.save_features(self.export_path(dataset_name), query, gallery)
        distmat = self.compute_distance(query, gallery, dist_metric, normalize_feature, rerank)
        t = time.time()
        res = self.compute_metrics(distmat, query, gallery, use_metric_cuhk03=use_metric_cuhk03)
        if main:
            print(f'** Results ({dataset_name}: {len(query["pids"])} queries x '
                  f'{len(gallery["pids"])} gallery, features {t_feat:.1f}s, ranking '
                  f'{time.time() - t:.2f}s) **')
            print(f'mAP: {res["mAP"]:.1%}')
            for r in ranks:
                if r - 1 < len(res['cmc']):
                    print(f'Rank-{r:<3}: {res["cmc"][r - 1]:.1%}')
        if self.keep_distmat:
            self.distmats[dataset_name] = distmat
        self.results[dataset_name] = res
        if visrank and main:
            torchreid.utils.visualize_ranked_results(
                distmat, self.datamanager.fetch_test_loaders(dataset_name),
                self.datamanager.data_type, width=self.datamanager.width,
                height=self.datamanager.height, save_dir=osp.join(save_dir, 'visrank_' + dataset_name),
                topk=visrank_topk)
        return res['rank1'], res['mAP']
