"""N classifiers of one architecture trained side by side (filter grafting / DGD), spec E.2."""
import copy
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS

from mm_ext._registry import register
from mm_ext.core.grafting import dgd_loss, dgd_teacher_logits, ring_exchange

_SKIP_PREFIX = 'data_preprocessor.'


def _dist_world():
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@register(MODELS)
class GraftingClassifier(BaseModel):
    """Holds the ring members of filter grafting (and DGD) as mmpretrain classifiers.

    Two execution models, chosen by ``execution``:

    - ``'process'``: all ``num_nets`` networks live in this process; the optimiser is an
      ``OptimWrapperDict`` with one entry ``net<k>`` per network (see
      ``GraftingOptimWrapperConstructor``), each network gets its own batch (``GraftingSampler`` +
      ``GraftingDataset`` give every network the whole training set in its own order).
    - ``'ranks'``: one network per rank (``tools/dist_train.sh CONFIG N`` with N = ``num_nets``;
      the model wrapper ``GraftingRankWrapper`` does not synchronise gradients); rank r holds
      network r, the ring exchange and the DGD teacher go through ``torch.distributed``.
    - ``'auto'`` (default): ``'ranks'`` when a process group with more than one rank exists.

    Network k is built and initialised under its own seed (``init_seed`` + k), so network k has
    the same initial weights in both execution models. Grafting itself is done by
    ``GraftingHook`` through :meth:`local_states`, :meth:`predecessor_states` and
    :meth:`load_local_states`.

    Args:
        net (dict): config of one classifier (e.g. ``ImageClassifier``); its own
            ``data_preprocessor`` is unused (this model's is applied once per batch).
        num_nets (int): ring size N. 1 = the plain baseline on the same pipeline. Defaults to 2.
        execution (str): ``'auto'``, ``'process'`` or ``'ranks'``. Defaults to ``'auto'``.
        dgd (dict, optional): DGD distillation ``dict(weight=1.0, temperature=2.0, mode='kl',
            teacher_inputs='own')``; None = no distillation. Defaults to None.

            - ``mode='kl'`` (default): ``T^2 * KL(softmax(t / T) || softmax(z / T))``, fixed point
              z = t. ``'soft_ce'`` = the authors' offline prototype (teacher at T = 1, student at T):
              its fixed point is z = T * t, so between online members (which teach each other, and
              which are identical after every 2-network graft) it multiplies the logit scale by T
              round after round and the members collapse onto one over-confident class (measured:
              chance accuracy for 3 epochs, 25 % vs the baseline's 53 %). Use it only with care.
            - ``teacher_inputs='own'`` (default): every member reads its own stream (as in
              grafting) and its teacher is the mean of the other members' logits on *its* batch,
              computed without gradient in train mode (BN statistics of that batch, as in their own
              training forward; running statistics are restored afterwards). Eval-mode BN is not
              used: right after a graft the blended running statistics do not fit the blended
              weights, and early in training they lag (measured: chance accuracy). ``'shared'``: the
              members read the same batches (needs ``GraftingSampler(shared_order=True)``) and the
              teacher is the mean of the other members' training logits; with 2 networks the
              members are identical after each graft and read identical batches, so they stay
              (nearly) identical and the term does almost nothing.
        init_seed (int, optional): base seed of the members' initialisation. None = derived from
            ``torch.initial_seed()`` (i.e. the runner's ``randomness.seed``). Defaults to None.
        eval_net (int): member whose scores are ``pred_score`` in predictions. Defaults to 0.
        data_preprocessor (dict, optional): defaults to mmpretrain's ``ClsDataPreprocessor``.
        init_cfg (dict, optional): unused (members initialise themselves). Defaults to None.
    """

    def __init__(self, net: dict, num_nets: int = 2, execution: str = 'auto', dgd: Optional[dict] = None,
                 init_seed: Optional[int] = None, eval_net: int = 0, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        data_preprocessor = dict(data_preprocessor or {})
        data_preprocessor.setdefault('type', 'mmpretrain.ClsDataPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if num_nets < 1:
            raise ValueError(f'GraftingClassifier: num_nets must be >= 1, got {num_nets}')
        if execution not in ('auto', 'process', 'ranks'):
            raise ValueError(f"GraftingClassifier: execution must be 'auto', 'process' or 'ranks', got {execution!r}")
        rank, world = _dist_world()
        if execution == 'auto':
            execution = 'ranks' if world > 1 else 'process'
        if execution == 'ranks' and world != num_nets:
            raise ValueError(f'GraftingClassifier: execution=ranks needs one rank per network, but num_nets='
                             f'{num_nets} and the world size is {world}; launch with '
                             f'`tools/dist_train.sh CONFIG {num_nets}` or set model.num_nets={world}')
        self.execution, self.num_nets, self.rank = execution, num_nets, rank
        self.local_ids: List[int] = [rank] if execution == 'ranks' else list(range(num_nets))
        if not 0 <= eval_net < num_nets:
            raise ValueError(f'GraftingClassifier: eval_net={eval_net} is not a member index (< {num_nets})')
        self.eval_net = eval_net
        if dgd is not None:
            dgd = dict(dict(weight=1.0, temperature=2.0, mode='kl', teacher_inputs='own'), **dgd)
            if num_nets < 2:
                raise ValueError('GraftingClassifier: dgd needs num_nets >= 2 (the teacher is the other members)')
            if dgd['mode'] not in ('soft_ce', 'kl'):
                raise ValueError(f"GraftingClassifier: dgd.mode must be 'soft_ce' or 'kl', got {dgd['mode']!r}")
            if dgd['teacher_inputs'] not in ('own', 'shared'):
                raise ValueError("GraftingClassifier: dgd.teacher_inputs must be 'own' or 'shared', got "
                                 f"{dgd['teacher_inputs']!r}")
        self.dgd = dgd
        self.init_seed = int(torch.initial_seed() if init_seed is None else init_seed) % (2**62)
        net = dict(net)
        net.pop('data_preprocessor', None)
        self.nets = nn.ModuleDict()
        for g in self.local_ids:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.member_seed(g))
                self.nets[str(g)] = MODELS.build(copy.deepcopy(net))

    def member_seed(self, g: int, salt: int = 0) -> int:
        """Seed of member ``g`` (build: salt 0, ``init_weights``: salt 1)."""
        return (self.init_seed * 1000003 + g * 7919 + salt * 104729) % (2**62)

    def init_weights(self):
        for g, net in self.local_items():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.member_seed(g, 1))
                net.init_weights()
        self._is_init = True
        # mmengine's Runner broadcasts rank 0's weights after init_weights (it assumes DDP replicas);
        # in rank mode the member keeps its own initial state here and GraftingHook puts it back
        # (before_train) unless a checkpoint was loaded in between.
        self.pending_init = ({k: v.detach().clone() for k, v in self.state_dict().items()}
                             if self.execution == 'ranks' else None)

    @torch.no_grad()
    def restore_pending_init(self) -> bool:
        """Undo the Runner's post-init broadcast in rank mode; returns whether anything was restored."""
        saved, self.pending_init = getattr(self, 'pending_init', None), None
        if not saved:
            return False
        live = self.state_dict()
        for k, v in saved.items():
            live[k].copy_(v)
        return True

    def local_items(self):
        """``(global index, classifier)`` of the members held here."""
        return [(int(k), m) for k, m in self.nets.items()]

    # ---------------------------------------------------------------- training
    def _logits(self, net, inputs):
        return net.head(net.extract_feat(inputs))

    def _split(self, data):
        if isinstance(data, dict) and 'nets' in data:
            batches = data['nets']
        else:
            batches = [data] * len(self.local_ids)
        if len(batches) != len(self.local_ids):
            raise ValueError(f'GraftingClassifier: got {len(batches)} batches for {len(self.local_ids)} local '
                             'members; use GraftingSampler(num_streams=num_nets) with GraftingDataset')
        return batches

    def _all_logits(self, local_logits: List[torch.Tensor]) -> List[torch.Tensor]:
        """Detached logits of all N members on the same inputs (all-gathered in rank mode)."""
        if self.execution == 'process':
            return [z.detach() for z in local_logits]
        z = local_logits[0].detach().contiguous()
        out = [torch.empty_like(z) for _ in range(self.num_nets)]
        dist.all_gather(out, z)
        return out

    @torch.no_grad()
    def _cross_teachers(self, local_inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        """DGD teachers for ``teacher_inputs='own'``: for each local member's batch, the mean of the
        other members' logits on that batch, computed as their training forward would be (train
        mode, BN batch statistics of that batch) but without gradient, and with every buffer (BN
        running statistics, counters) put back afterwards. Rank mode gathers the batches first.
        """
        n = self.num_nets
        if self.execution == 'process':
            every = list(local_inputs)
        else:
            x = local_inputs[0].contiguous()
            shapes = [None] * n
            dist.all_gather_object(shapes, tuple(x.shape))
            if len(set(shapes)) != 1:
                raise RuntimeError(f'GraftingClassifier: DGD teacher_inputs=own needs equal batch shapes on all '
                                   f'ranks, got {shapes} (every rank reads the whole set with the same batch size)')
            every = [torch.empty_like(x) for _ in range(n)]
            dist.all_gather(every, x)
        on = {}  # (member j, batch i) -> logits of j on batch i
        for j, net in self.local_items():
            saved = [(b, b.detach().clone()) for b in net.buffers()]
            try:
                for i in range(n):
                    if i != j:
                        on[j, i] = self._logits(net, every[i])
            finally:
                for b, v in saved:
                    b.copy_(v)
        if self.execution == 'ranks':
            r = self.rank
            flat = torch.cat([on[r, i] for i in range(n) if i != r]).contiguous()
            gathered = [torch.empty_like(flat) for _ in range(n)]
            dist.all_gather(gathered, flat)
            for j in range(n):
                others = [i for i in range(n) if i != j]
                on.update({(j, i): t for i, t in zip(others, gathered[j].split([every[i].shape[0] for i in others]))})
        return [torch.stack([on[j, i] for j in range(n) if j != i]).sum(0) / (n - 1) for i, _ in self.local_items()]

    def dgd_term(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Weighted DGD loss of one member (``weight * dgd_loss``) with this model's settings."""
        return self.dgd['weight'] * dgd_loss(student, teacher, self.dgd['temperature'], self.dgd['mode'])

    def train_step(self, data, optim_wrapper):
        batches = self._split(data)
        log_vars: Dict[str, torch.Tensor] = {}
        total = 0.
        if self.dgd is None:
            for (g, net), batch in zip(self.local_items(), batches):
                ow = optim_wrapper[f'net{g}']
                with ow.optim_context(net):
                    batch = self.data_preprocessor(batch, True)
                    losses = net.head._get_loss(self._logits(net, batch['inputs']), batch['data_samples'])
                loss, lv = self.parse_losses(losses)
                ow.update_params(loss)
                total = total + loss.detach()
                log_vars.update({f'net{g}_{k}': v for k, v in lv.items()})
        else:
            prepared = [self.data_preprocessor(batch, True) for batch in batches]
            if self.dgd['teacher_inputs'] == 'own':  # before the students' forward (buffers are restored in place)
                teachers = self._cross_teachers([b['inputs'] for b in prepared])
            logits, owns = [], []
            for (g, net), batch in zip(self.local_items(), prepared):
                ow = optim_wrapper[f'net{g}']
                with ow.optim_context(net):
                    logits.append(self._logits(net, batch['inputs']))
                owns.append(ow)
            if self.dgd['teacher_inputs'] == 'shared':
                every = dgd_teacher_logits(self._all_logits(logits))
                teachers = [every[g] for g, _ in self.local_items()]
            for i, (g, net) in enumerate(self.local_items()):
                ce = net.head._get_loss(logits[i], prepared[i]['data_samples'])
                # the head's own key is 'loss'; renamed so that the logged 'loss' is the member's total
                losses = {f'loss_cls{k[4:]}' if k.startswith('loss') else k: v for k, v in ce.items()}
                losses['loss_dgd'] = self.dgd_term(logits[i], teachers[i])
                loss, lv = self.parse_losses(losses)
                owns[i].update_params(loss)
                total = total + loss.detach()
                log_vars.update({f'net{g}_{k}': v for k, v in lv.items()})
        log_vars['loss'] = total / len(self.local_ids)
        return log_vars

    # -------------------------------------------------------------- prediction
    def _gather_scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """Softmax scores (N, B, C) of every member on ``inputs`` (this rank's batch)."""
        if self.execution == 'process':
            return torch.stack([self._logits(net, inputs).softmax(1) for _, net in self.local_items()])
        # rank mode: each rank runs its member on every rank's batch, then the scores are exchanged
        _, net = self.local_items()[0]
        n = torch.tensor([inputs.shape[0]], device=inputs.device)
        sizes = [torch.zeros_like(n) for _ in range(self.num_nets)]
        dist.all_gather(sizes, n)
        sizes = [int(s) for s in sizes]
        pad = max(sizes)
        padded = inputs.new_zeros((pad, ) + tuple(inputs.shape[1:]))
        padded[:inputs.shape[0]] = inputs
        every = [torch.empty_like(padded) for _ in range(self.num_nets)]
        dist.all_gather(every, padded.contiguous())
        mine = self._logits(net, torch.cat(every)).softmax(1).contiguous()  # (N * pad, C)
        scores = [torch.empty_like(mine) for _ in range(self.num_nets)]
        dist.all_gather(scores, mine)
        r = self.rank
        return torch.stack([s[r * pad:r * pad + sizes[r]] for s in scores])

    def _predict(self, data):
        data = self.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data['data_samples']
        scores = self._gather_scores(inputs)
        if samples is None:
            from mmpretrain.structures import DataSample
            samples = [DataSample() for _ in range(inputs.shape[0])]
        for i, ds in enumerate(samples):
            s = scores[self.eval_net, i]
            ds.set_pred_score(s).set_pred_label(s.argmax().view(1))
            ds.set_field(scores[:, i].detach(), 'net_scores')
        return samples

    def val_step(self, data):
        return self._predict(data)

    def test_step(self, data):
        return self._predict(data)

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        """``mode='tensor'``: logits of every local member (list); ``'predict'``: as ``val_step``;
        ``'loss'``: the members' own losses (no DGD, no update)."""
        if mode == 'tensor':
            return [self._logits(net, inputs) for _, net in self.local_items()]
        if mode == 'predict':
            return self._predict(dict(inputs=inputs, data_samples=data_samples))
        if mode == 'loss':
            out = {}
            for g, net in self.local_items():
                out.update({f'net{g}_{k}': v for k, v in net.loss(inputs, data_samples).items()})
            return out
        raise RuntimeError(f'GraftingClassifier: invalid mode {mode!r}')

    # ---------------------------------------------------------------- grafting
    def local_states(self) -> Dict[int, Dict[str, torch.Tensor]]:
        """Member index -> its state dict (live tensors, without data-preprocessor buffers)."""
        return {g: {k: v for k, v in net.state_dict().items() if not k.startswith(_SKIP_PREFIX)}
                for g, net in self.local_items()}

    def predecessor_states(self, states: Dict[int, Dict[str, torch.Tensor]]) -> Dict[int, Dict[str, torch.Tensor]]:
        """Member index k -> the pre-graft state of member k-1 (ring; member 0 gets member N-1)."""
        if self.execution == 'process':
            return {g: states[(g - 1) % self.num_nets] for g in states}
        (g, state), = states.items()
        return {g: ring_exchange(state)}

    @torch.no_grad()
    def load_local_states(self, new: Dict[int, Dict[str, torch.Tensor]]) -> None:
        """Copy grafted tensors into the members in place (parameters keep their identity, so the
        optimisers and their momentum buffers are untouched, as in the official code)."""
        for g, net in self.local_items():
            live = net.state_dict()
            for k, v in new[g].items():
                live[k].copy_(v)
