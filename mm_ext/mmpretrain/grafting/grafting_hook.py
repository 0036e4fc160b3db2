"""The per-epoch ring exchange of filter grafting (spec B.2, E.2, decisions 12-14)."""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from mm_ext._registry import register
from mm_ext.core.grafting import (conv_bn_pairs, filter_coefficients, graft_state_dict, invalid_filter_stats,
                                  layer_coefficients, reference_drivers, structural_drivers)


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@register(HOOKS)
class GraftingHook(Hook):
    """Grafts every member of a ``GraftingClassifier`` with its ring predecessor once per epoch.

    ``evaluate='pre'`` (default, official): the exchange runs in ``before_train_epoch`` from the
    second epoch on, so validation and checkpoints after epoch e see the pre-graft weights of
    epoch e (the last epoch's graft, which never influences reported numbers, is skipped).
    ``evaluate='post'``: the exchange runs in ``after_train_epoch`` before validation and before
    ``CheckpointHook`` saves. The optimisers are not touched (official).

    Each exchange logs, per member, the mean coefficient and the invalid-filter ratio
    (``train/graft_w_net<k>``, ``train/invalid_ratio_net<k>``) and appends one JSON line per
    member and layer (entropy of both sides and the coefficient) to ``<work_dir>/grafting.jsonl``
    (``grafting.rank<r>.jsonl`` in rank mode). The history also rides in the checkpoint
    (``checkpoint['grafting']``). In rank mode the other ranks' weights, optimiser and scheduler
    states are gathered into the (rank-0) checkpoint and handed back to each rank on resume.

    Args:
        evaluate (str): ``'pre'`` or ``'post'``. Defaults to ``'pre'``.
        a (float): A. Defaults to 0.4.
        c (float): arctan slope (500 official, 5 Ensemble-Grafting). Defaults to 500.
        decimals (int | None): rounding of w. Defaults to 2.
        bins (int): entropy bins. Defaults to 10.
        include_max (bool): count the maximum in the last bin; False = official quirk. Defaults to True.
        driver (str): ``'structural'`` (module graph) or ``'reference'`` (keys containing ``conv``).
            Defaults to ``'structural'``.
        level (str): ``'layer'`` or ``'filter'`` (per-channel BN-gamma coefficients). Defaults to ``'layer'``.
        input_side (bool): filter level: also blend input slices by the previous BN. Defaults to False.
        input_shape (sequence of int): (C, H, W) of the example input used to trace the drivers.
            Defaults to (3, 32, 32).
        invalid_threshold (float): filter L1 norm below which a filter counts as invalid. Defaults to 0.01.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self, evaluate: str = 'pre', a: float = 0.4, c: float = 500.0, decimals: Optional[int] = 2,
                 bins: int = 10, include_max: bool = True, driver: str = 'structural', level: str = 'layer',
                 input_side: bool = False, input_shape: Sequence[int] = (3, 32, 32),
                 invalid_threshold: float = 0.01):
        for name, val, ok in (('evaluate', evaluate, ('pre', 'post')), ('driver', driver, ('structural', 'reference')),
                              ('level', level, ('layer', 'filter'))):
            if val not in ok:
                raise ValueError(f'GraftingHook: {name} must be one of {ok}, got {val!r}')
        self.evaluate, self.a, self.c, self.decimals = evaluate, a, c, decimals
        self.bins, self.include_max, self.driver, self.level = bins, include_max, driver, level
        self.input_side, self.input_shape, self.invalid_threshold = input_side, tuple(input_shape), invalid_threshold
        self.history: List[dict] = []
        self._drivers: Optional[Dict[str, str]] = None
        self._pairs = None
        self._gathered = None

    # ------------------------------------------------------------------ setup
    def before_run(self, runner) -> None:
        model = _unwrap(runner.model)
        if not hasattr(model, 'local_states'):
            raise TypeError(f'GraftingHook needs a GraftingClassifier model, got {type(model).__name__}')
        _, net = model.local_items()[0]
        keys = list(model.local_states()[model.local_items()[0][0]].keys())
        device = next(net.parameters()).device
        x = torch.zeros((2, ) + self.input_shape, device=device)
        run = lambda: net(x, mode='tensor')  # noqa: E731
        self._drivers = structural_drivers(net, run, keys) if self.driver == 'structural' else reference_drivers(keys)
        if self.level == 'filter':
            self._pairs = conv_bn_pairs(net, run)

    def before_train(self, runner) -> None:
        if _unwrap(runner.model).restore_pending_init():
            runner.logger.info('GraftingHook: rank-mode member restored its own initial weights after the '
                               "Runner's rank-0 broadcast")

    # --------------------------------------------------------------- exchange
    def before_train_epoch(self, runner) -> None:
        if self.evaluate == 'pre' and runner.epoch > 0:
            self.graft(runner, runner.epoch)

    def after_train_epoch(self, runner) -> None:
        if self.evaluate == 'post':
            self.graft(runner, runner.epoch + 1)
        model = _unwrap(runner.model)
        if model.execution == 'ranks':
            self._gather_for_checkpoint(runner, model)

    def graft(self, runner, epoch: int) -> None:
        """One synchronous ring exchange (every member mixes with its predecessor's pre-graft state)."""
        model = _unwrap(runner.model)
        if model.num_nets < 2:
            return
        states = model.local_states()
        preds = model.predecessor_states(states)
        new, records = {}, []
        for g, own in states.items():
            other = preds[g]
            coefs, layers = layer_coefficients(own, other, self._drivers, self.a, self.c, self.decimals, self.bins,
                                               self.include_max)
            if self.level == 'filter':
                coefs = filter_coefficients(own, other, self._pairs, coefs, self.input_side)
            new[g] = graft_state_dict(own, other, coefs)
            inv = invalid_filter_stats(own, self.invalid_threshold)
            rec = {'epoch': epoch, 'net': g, 'invalid_ratio': inv['ratio'],
                   'layers': {k: {'H': v[0], 'H_pred': v[1], 'w': v[2]} for k, v in layers.items()}}
            records.append(rec)
            ws = [v[2] for v in layers.values()]
            runner.message_hub.update_scalar(f'train/graft_w_net{g}', sum(ws) / len(ws))
            runner.message_hub.update_scalar(f'train/invalid_ratio_net{g}', inv['ratio'])
            runner.logger.info(f'grafting epoch {epoch} net{g} <- net{(g - 1) % model.num_nets}: mean w '
                               f'{sum(ws) / len(ws):.3f} (min {min(ws):.2f}, max {max(ws):.2f}), invalid filters '
                               f'{inv["invalid"]}/{inv["total"]}')
        model.load_local_states(new)
        self.history.extend(records)
        name = 'grafting.jsonl' if model.execution == 'process' else f'grafting.rank{model.rank}.jsonl'
        with open(osp.join(runner.work_dir, name), 'a') as f:
            for rec in records:
                f.write(json.dumps(rec) + '\n')

    # ------------------------------------------------------------- checkpoint
    def _gather_for_checkpoint(self, runner, model) -> None:
        scheds = runner.param_schedulers
        own = {
            'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()},
            'optimizer': runner.optim_wrapper.state_dict(),
            'param_schedulers': {n: [s.state_dict() for s in lst] for n, lst in scheds.items()}
            if isinstance(scheds, dict) else None,
            'history': self.history,
        }
        out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
        dist.gather_object(own, out, dst=0)
        self._gathered = out

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['grafting'] = {'history': self.history}
        if self._gathered is not None:
            checkpoint['grafting']['ranks'] = self._gathered

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        _unwrap(runner.model).pending_init = None  # loaded weights win over the initial ones
        state = checkpoint.get('grafting')
        if state is None:
            runner.logger.warning('GraftingHook: the checkpoint has no grafting state (not written by '
                                  'GraftingHook); the exchange history starts empty')
            return
        self.history = list(state.get('history', []))
        ranks = state.get('ranks')
        model = _unwrap(runner.model)
        if model.execution == 'ranks':
            if ranks is None or len(ranks) != model.num_nets:
                raise RuntimeError('GraftingHook: resuming in rank mode needs a checkpoint written in rank mode '
                                   f'with {model.num_nets} ranks')
            mine = ranks[model.rank]
            checkpoint['state_dict'] = mine['state_dict']
            checkpoint['optimizer'] = mine['optimizer']
            if mine['param_schedulers'] is not None:
                checkpoint['param_schedulers'] = mine['param_schedulers']
            self.history = list(mine['history'])
