"""Bit-exact resume for mmengine runners: random generator and sampler state in every checkpoint.

mmengine's ``Runner.resume`` restores weights, optimiser, schedulers and the message hub, then
trains on with generators that were re-seeded at start-up, so the data augmentation and any
sampling in the model draw different numbers than the uninterrupted run would have.
:class:`ExactResumeHook` closes that gap:

* when a checkpoint is about to be saved, every rank captures its Python, numpy and torch
  (CPU and CUDA) generator states (gathered to rank 0 under DDP), together with the training
  sampler's seed; rank 0 writes them into the checkpoint under ``'resume_state'``;
* validation runs inside :func:`~mm_ext.engine.rng_state.preserved_rng_state`, so whether
  an evaluation happened after the checkpoint does not change the training stream;
* on ``--resume`` the states are restored *after* mmengine re-seeded and rebuilt everything:
  in ``before_train`` for epoch-based loops, and for iteration-based loops right after the
  loop has fast-forwarded its dataloader past the iterations already trained.

Method state (MoCo queues, Filter Skeletons, ...) lives in module parameters/buffers and is
saved by mmengine itself. ``tools/train.py`` adds the hook to every config (``--no-exact-resume``
turns it off). Exactness needs the same world size, ``num_workers=0`` or non-persistent
workers (mmengine re-seeds workers identically every epoch; persistent workers keep private
generators that no checkpoint can hold: the hook warns) and, on GPU, deterministic kernels
(``randomness=dict(seed=..., deterministic=True)``).
"""
import inspect
from typing import Any, Dict, List, Optional

from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

from mm_ext._registry import register

from .rng_state import capture_rng_state, preserved_rng_state, restore_rng_state

__all__ = ['ExactResumeHook', 'RESUME_KEY', 'inject_exact_resume']

RESUME_KEY = 'resume_state'


def _train_sampler(runner):
    loop = getattr(runner, '_train_loop', None)
    loader = getattr(loop, 'dataloader', None) if loop is not None and not isinstance(loop, dict) else None
    if loader is None:
        return None
    sampler = getattr(loader, 'sampler', None)
    if sampler is not None and hasattr(sampler, 'seed'):
        return sampler
    batch_sampler = getattr(loader, 'batch_sampler', None)
    inner = getattr(batch_sampler, 'sampler', None)
    return inner if inner is not None and hasattr(inner, 'seed') else None


def _loop_fast_forwards(loop) -> bool:
    """True if the iteration-based loop skips ``_iter`` batches itself when resumed."""
    try:
        src = inspect.getsource(type(loop).run)
    except (OSError, TypeError):
        return True
    return 'range(self._iter)' in src


class _RestoreBeforeNext:
    """Wraps a loop's ``dataloader_iterator``: restore the state before batch ``skip + 1``.

    mmengine's ``IterBasedTrainLoop`` pulls (and transforms, with ``num_workers=0``) ``skip``
    batches to fast-forward the data stream after a resume, which draws from the generators;
    the saved state belongs right before the first batch that is trained on.
    """

    def __init__(self, loop, iterator, skip: int, state: Dict[str, Any]):
        self.loop, self.iterator, self.skip, self.state = loop, iterator, skip, state
        self.calls = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.calls == self.skip:
            restore_rng_state(self.state)
            self.loop.dataloader_iterator = self.iterator  # done: unwrap
        self.calls += 1
        return next(self.iterator)

    def __getattr__(self, name):
        return getattr(self.iterator, name)


@register(HOOKS)
class ExactResumeHook(Hook):
    """Store per-rank generator and sampler state in checkpoints; restore it on resume.

    Registered in mmengine's root ``HOOKS``, so every host scope finds it. Its priority (89)
    puts it right before :class:`~mmengine.hooks.CheckpointHook` (90): the state is captured
    after the other hooks of the iteration/epoch ran, just before the checkpoint is written.

    Args:
        preserve_val_rng (bool): run validation without moving the generators. Needed for
            exactness when a validation falls between a checkpoint and the next training
            step. Defaults to True.
    """

    priority = 89

    def __init__(self, preserve_val_rng: bool = True):
        self.preserve_val_rng = preserve_val_rng
        self._captured: Optional[Dict[str, Any]] = None
        self._pending: Optional[Dict[str, Any]] = None
        self._val_ctx = None

    # ------------------------------------------------------------------ capture
    def _checkpoint_hooks(self, runner) -> List[CheckpointHook]:
        return [h for h in runner.hooks if isinstance(h, CheckpointHook)]

    def _capture(self, runner, done_iters: int) -> None:
        """Capture (and under DDP gather) the states of all ranks; collective when distributed."""
        rank, world_size = get_dist_info()
        mine = capture_rng_state()
        ranks = all_gather_object(mine) if world_size > 1 else [mine]
        sampler = _train_sampler(runner)
        self._captured = dict(
            iter=int(done_iters), world_size=world_size, rng=ranks,
            sampler=None if sampler is None else dict(seed=getattr(sampler, 'seed', None)))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        for h in self._checkpoint_hooks(runner):
            if h.by_epoch:
                continue
            if h.every_n_train_iters(runner, h.interval, h.save_begin) or \
                    (h.save_last and h.is_last_train_iter(runner)):
                self._capture(runner, runner.iter + 1)
                return

    def after_train_epoch(self, runner) -> None:
        # cheap (once per epoch) and collective on all ranks alike
        self._capture(runner, runner.iter)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # rank 0 only (Runner.save_checkpoint is master_only): no collectives here
        done = checkpoint.get('meta', {}).get('iter')
        captured = self._captured
        if captured is None or (done is not None and captured['iter'] != done):
            rank, world_size = get_dist_info()
            if world_size > 1:
                runner.logger.warning(
                    f'ExactResumeHook: no gathered generator state for the checkpoint at iteration {done}; '
                    'it holds rank 0\'s state only, resuming from it on several ranks is not bit-exact')
            sampler = _train_sampler(runner)
            captured = dict(iter=done, world_size=world_size, rng=[capture_rng_state()],
                            sampler=None if sampler is None else dict(seed=getattr(sampler, 'seed', None)))
        checkpoint[RESUME_KEY] = captured

    # ------------------------------------------------------------------ restore
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from (fine-tuning, testing): keep the fresh seeds
        state = checkpoint.get(RESUME_KEY)
        if state is None:
            runner.logger.warning('ExactResumeHook: the checkpoint holds no generator state (saved without '
                                  'this hook); the resumed run continues from re-seeded generators')
        self._pending = state

    def before_train(self, runner) -> None:
        loader = getattr(runner.train_loop, 'dataloader', None)
        if loader is not None and getattr(loader, 'num_workers', 0) > 0 and \
                getattr(loader, 'persistent_workers', False):
            runner.logger.warning(
                'ExactResumeHook: the train dataloader has persistent workers; their private generators '
                'cannot be checkpointed, so a resumed run draws different augmentations. For a bit-exact '
                'resume use persistent_workers=False (workers are re-seeded identically each epoch) or '
                'num_workers=0.')
        state, self._pending = self._pending, None
        if state is None:
            return
        rank, world_size = get_dist_info()
        if state.get('world_size', 1) != world_size:
            runner.logger.warning(
                f'ExactResumeHook: checkpoint saved with {state.get("world_size")} ranks, resuming with '
                f'{world_size}; generator states are restored per rank where available, the run is not '
                'bit-exact')
        ranks = state['rng']
        rng = ranks[rank] if rank < len(ranks) else ranks[0]
        sampler, saved = _train_sampler(runner), state.get('sampler') or {}
        if sampler is not None and saved.get('seed') is not None and sampler.seed != saved['seed']:
            runner.logger.info(f'ExactResumeHook: train sampler seed {sampler.seed} -> {saved["seed"]} '
                               '(the interrupted run\'s)')
            sampler.seed = saved['seed']
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):  # iteration-based: after the fast-forward
            skip = loop.iter if _loop_fast_forwards(loop) else 0
            loop.dataloader_iterator = _RestoreBeforeNext(loop, loop.dataloader_iterator, skip, rng)
        else:
            restore_rng_state(rng)
        runner.logger.info(f'ExactResumeHook: restored the random generator state of iteration '
                           f'{state.get("iter")} (rank {rank} of {world_size})')

    # ------------------------------------------------------------------ validation
    def before_val(self, runner) -> None:
        if self.preserve_val_rng:
            self._val_ctx = preserved_rng_state()
            self._val_ctx.__enter__()

    def after_val(self, runner) -> None:
        ctx, self._val_ctx = self._val_ctx, None
        if ctx is not None:
            ctx.__exit__(None, None, None)


def inject_exact_resume(cfg) -> bool:
    """Add :class:`ExactResumeHook` to ``cfg.custom_hooks`` unless present. Returns True if added."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    for h in hooks:
        t = h.get('type') if isinstance(h, dict) else type(h)
        if t in ('ExactResumeHook', ExactResumeHook) or isinstance(h, ExactResumeHook):
            return False
    hooks.append(dict(type='ExactResumeHook'))
    cfg.custom_hooks = hooks
    return True
