"""PISNet stage-2 engine (spec ``reid.md`` §2.3, §2.5; decisions 4, 6, 7).

Stage 1 is the plain BoT baseline (``engine.name: softmax``, ``loss.name: triplet`` on the
single-person crops, dataset ``synth_pi_single`` / PI ``*_single``); stage 2 loads its weights
(``model.load_weights``) into PISNet and trains **only the attention blocks** (QGAB, GRAM): every
other parameter is frozen and the frozen part's BatchNorm layers stay in eval mode, so the
network's plain feature *is* the stage-1 feature (bit for bit; ``tests/reid/test_pisnet_engine.py``
checks it). By default the pre-selection of the test protocol uses that feature (one backbone
pass per image gives the pre-selection feature and the map the re-scoring reuses).
``pisnet.preselect_weights: <stage-1 checkpoint>`` pre-selects with a separate stage-1 BoT model
instead (the release's way; needed when the PISNet backbone is not the stage-1 one): it is
loaded into :meth:`PISNet.stage1_twin`, registered as the frozen model ``preselect`` (kept in
the full checkpoints) and costs a second backbone pass per test image; the re-scoring still
compares with PISNet's own un-attended query feature.

Training: triples (G, q1, q2) from :class:`reid_ext.datasets.pi_reid.PIReID`, re-drawn at the
start of every epoch (``regenerate(epoch)``: a function of the dataset seed and the epoch, so a
resume draws the same), loss :func:`reid_ext.core.pisnet.pisnet_loss`.

Evaluation (:meth:`compute_distance`, :meth:`compute_metrics`): pre-selection = Euclidean on
L2-normalised BN features; the top ``pisnet.topk`` (100) candidates of each query are re-scored
in batches from the gallery backbone maps computed once; the ranking is the re-scored top-k
followed by the rest in pre-selection order. Both protocols are reported: ``mAP``/``rank1``/
``cmc`` = official PI protocol, ``full_mAP``/``full_rank1``/``full_cmc`` = full gallery.
"""
import os.path as osp
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchreid
from yacs.config import CfgNode as CN

from reid_ext import checkpoint as ckpt_io
from reid_ext._register import register_model
from reid_ext.core.pi_metric import pi_evaluate
from reid_ext.core.pisnet import pisnet_loss
from reid_ext.datasets import pi_reid  # noqa: F401  (registers synth_pi datasets)
from reid_ext.engines.base_engine import ReidExtEngine, _unwrap
from reid_ext.models.pisnet import pisnet_resnet50, pisnet_tiny
from reid_ext.registry import register_engine

__all__ = ['PISNetEngine', 'pisnet_node', 'rescore_candidates', 'load_stage1_model']

register_model('pisnet_resnet50', pisnet_resnet50)
register_model('pisnet_tiny', pisnet_tiny)


def pisnet_node() -> CN:
    """Defaults of the ``pisnet:`` YAML node."""
    n = CN()
    n.gamma = 1.0            # MPS weight
    n.beta = 0.5             # GRAM-term weight
    n.margin = 0.1           # MPS and triplet margin
    n.pyramid = 's2'
    n.gram = True
    n.release_wiring = False
    n.topk = 100             # pre-selection size (0: re-score the whole gallery)
    n.min_len = 50           # PI protocol: shorter candidate lists are skipped
    n.rescore_batch = 100    # pairs per re-scoring forward
    n.rescore = True         # False: rank by the pre-selection (stage-1 baseline) alone
    n.preselect_weights = ''  # stage-1 checkpoint for pre-selection ('': PISNet's frozen part)
    return n


def load_stage1_model(net, path: str):
    """The frozen stage-1 BoT model stored in ``path`` (pre-selection), eval mode.

    Args:
        net (PISNet): the stage-2 network (gives the backbone architecture).
        path (str): a torchreid checkpoint (``{'state_dict': ...}``, e.g. stage 1's
            ``model/model.pth.tar-N``), a reid_ext full checkpoint (its ``model``) or a state dict;
            ``module.`` prefixes and PISNet's attention-block keys are ignored.
    """
    where = f'pisnet.preselect_weights {path!r}'
    if not osp.isfile(path):
        raise FileNotFoundError(f'{where}: no such file; give a stage-1 checkpoint such as '
                                f'<stage-1 save_dir>/model/model.pth.tar-<epochs>')
    obj = ckpt_io.load_file(path)
    if isinstance(obj, dict) and isinstance(obj.get('models'), dict):
        obj = obj['models'].get('model')
    elif isinstance(obj, dict) and 'state_dict' in obj:
        obj = obj['state_dict']
    if not isinstance(obj, dict) or 'classifier.weight' not in {
            k[7:] if k.startswith('module.') else k for k in obj}:
        raise ValueError(f'{where}: no state dict with classifier.weight: not a BNNeck (BoT) '
                         f'stage-1 checkpoint')
    sd = {(k[7:] if k.startswith('module.') else k): v for k, v in obj.items()}
    sd = {k: v for k, v in sd.items() if not k.startswith(('qgab.', 'gram.'))}
    twin = net.stage1_twin(sd['classifier.weight'].shape[0])
    try:
        twin.load_state_dict(sd)
    except RuntimeError as e:
        raise ValueError(f'{where}: not a stage-1 BoT checkpoint of the {net.backbone_name!r} '
                         f'backbone (last stride {net.last_stride}): '
                         f'{" ".join(str(e).split())[:400]}') from None
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin.eval()


@torch.no_grad()
def rescore_candidates(net, q_maps: torch.Tensor, q_feat: torch.Tensor, g_maps: torch.Tensor,
                       batch: int = 100) -> torch.Tensor:
    """Distances (K,) between one query and K gallery crops conditioned on it.

    Args:
        net (PISNet): the model (eval mode).
        q_maps (Tensor): the query's backbone map (D, h, w).
        q_feat (Tensor): the query's un-attended BN feature (D,), L2-normalised.
        g_maps (Tensor): the K candidates' backbone maps (K, D, h, w), computed once per gallery.
        batch (int): pairs per forward (no data loader involved).
    """
    dev = next(net.parameters()).device
    q = q_maps.to(dev)[None]
    out = []
    for i in range(0, len(g_maps), batch):
        gm = g_maps[i:i + batch].to(dev)
        gf = F.normalize(net.guided_features(gm, q.expand(len(gm), -1, -1, -1)), dim=1)
        out.append((gf - q_feat.to(dev)[None]).norm(dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0)


@register_engine('pisnet', node=('pisnet', pisnet_node))
class PISNetEngine(ReidExtEngine):
    """Stage-2 PISNet training and the two evaluation protocols (module docstring)."""

    def __init__(self, datamanager, model, optimizer=None, scheduler=None, use_gpu=False,
                 gamma=1.0, beta=0.5, margin=0.1, topk=100, min_len=50, rescore_batch=100,
                 rescore=True, preselect_weights=''):
        super().__init__(datamanager, use_gpu)
        net = _unwrap(model)
        keep = {id(p) for p in net.attention_parameters()}
        for p in net.parameters():  # stage 2: only the attention blocks train
            p.requires_grad_(id(p) in keep)
        self.model = self.register_model('model', model, optimizer, scheduler)
        self.preselect = None  # separate stage-1 model for pre-selection (module docstring)
        if preselect_weights:
            twin = load_stage1_model(net, preselect_weights)
            self.preselect = self.register_model('preselect', twin.cuda() if use_gpu else twin)
        self.gamma, self.beta, self.margin = gamma, beta, margin
        self.topk, self.min_len, self.rescore_batch = topk, min_len, rescore_batch
        self.do_rescore = rescore
        self.ce = torchreid.losses.CrossEntropyLoss(net.classifier.out_features, use_gpu=use_gpu,
                                                    label_smooth=False)
        self.tri = torchreid.losses.TripletLoss(margin=margin)
        self.gallery_pids = {}  # crop path -> list of pids (PI-ReID gallery labels)
        for loaders in (getattr(datamanager, 'test_loader', None) or {}).values():
            self.gallery_pids.update(getattr(loaders['gallery'].dataset, 'gallery_pids', {}))

    @classmethod
    def from_config(cls, cfg, datamanager, model, optimizer, scheduler):
        p = cfg.pisnet
        return cls(datamanager, model, optimizer, scheduler, use_gpu=cfg.use_gpu, gamma=p.gamma,
                   beta=p.beta, margin=p.margin, topk=p.topk, min_len=p.min_len,
                   rescore_batch=p.rescore_batch, rescore=p.rescore,
                   preselect_weights=p.preselect_weights)

    @classmethod
    def model_kwargs(cls, cfg) -> dict:
        p = cfg.pisnet
        # stage 2 freezes at construction, before apis wraps the model in DDP
        return dict(pyramid=p.pyramid, gram=p.gram, release_wiring=p.release_wiring,
                    attention_only=True)

    # ------------------------------------------------------------------ training
    def set_model_mode(self, mode='train', names=None):
        super().set_model_mode(mode, names)
        if mode == 'train':  # the frozen stage-1 part keeps its BN statistics
            net = _unwrap(self.model)
            for m in (net.backbone, net.bnneck):
                m.eval()
            if self.preselect is not None:
                self.preselect.eval()

    def train(self, print_freq=10, fixbase_epoch=0, open_layers=None):
        ds = self.train_loader.dataset
        if hasattr(ds, 'regenerate'):
            ds.regenerate(self.epoch)  # new (q1, q2) draws every epoch
        return super().train(print_freq=print_freq, fixbase_epoch=fixbase_epoch,
                             open_layers=open_layers)

    def forward_loss(self, data):
        dev = 'cuda' if self.use_gpu else 'cpu'
        g, q1, q2 = (data[k].to(dev) for k in ('img', 'q1', 'q2'))
        pids = data['pid'].to(dev)
        out = self.model(g, q1, q2)
        return pisnet_loss(out, pids, self.ce, self.tri, self.gamma, self.beta, self.margin)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def extract_batch(self, data):
        imgs, pids, camids = self.parse_data_for_eval(data)
        if self.use_gpu:
            imgs = imgs.cuda()
        net = _unwrap(self.model)
        maps = net.maps(imgs)
        feats = net.bnneck(net.pool(maps).flatten(1))
        paths = list(data['impath'])
        out = {'feats': feats.float().cpu(), 'maps': maps.float().cpu(),
               'pids': np.asarray(pids, dtype=np.int64),
               'camids': np.asarray(camids, dtype=np.int64), 'paths': paths,
               'pid_lists': [self.gallery_pids.get(p, [int(i)]) for p, i in zip(paths, pids)]}
        if self.preselect is not None:  # 'feats' = pre-selection, 'plain' = PISNet's own
            out['plain'] = out['feats']
            out['feats'] = self.preselect(imgs).float().cpu()
        return out

    def rescore(self, q_maps: torch.Tensor, q_feat: torch.Tensor, g_maps: torch.Tensor) -> torch.Tensor:
        """:func:`rescore_candidates` with this engine's model and batch size."""
        return rescore_candidates(_unwrap(self.model), q_maps, q_feat, g_maps, self.rescore_batch)

    def compute_distance(self, query, gallery, dist_metric='euclidean', normalize_feature=False,
                         rerank=False):
        """Pre-selection + re-scoring; returns a (Q, G) matrix whose row order is the final
        ranking: re-scored top-k distances (in [0, 2]), then 2 + the pre-selection distance.
        Pre-selection on ``feats``; the re-scoring compares each conditioned gallery feature
        with PISNet's un-attended query feature (``plain``, = ``feats`` without a separate
        pre-selection model)."""
        qf, gf = F.normalize(query['feats'], dim=1), F.normalize(gallery['feats'], dim=1)
        q_plain = F.normalize(query['plain'], dim=1) if 'plain' in query else qf
        pre = torchreid.metrics.compute_distance_matrix(qf, gf, 'euclidean')
        k = len(gf) if self.topk <= 0 else min(self.topk, len(gf))
        dist = (pre + 2.0).numpy().astype(np.float64)
        if not self.do_rescore:  # the stage-1 baseline under the same protocols
            return dist
        order = torch.argsort(pre, dim=1, stable=True)[:, :k]
        t = time.time()
        for i in range(len(qf)):
            idx = order[i]
            d = self.rescore(query['maps'][i], q_plain[i], gallery['maps'][idx])
            dist[i, idx.numpy()] = d.numpy()
        self.rescore_time = time.time() - t
        return dist

    def compute_metrics(self, distmat, query, gallery, use_metric_cuhk03=False):
        rankings = np.argsort(distmat, axis=1, kind='stable')
        k = distmat.shape[1] if self.topk <= 0 else self.topk
        args = (rankings, query['pids'], query['camids'], gallery['pid_lists'], gallery['camids'])
        pi = pi_evaluate(*args, protocol='pi', topk=k, min_len=min(self.min_len, k))
        full = pi_evaluate(*args, protocol='full')
        res = dict(mAP=pi['mAP'], rank1=pi['rank1'], cmc=[float(x) for x in pi['cmc']],
                   num_valid=pi['num_valid'], skipped_no_positive=pi['skipped_no_positive'],
                   skipped_short=pi['skipped_short'], full_mAP=full['mAP'], full_rank1=full['rank1'],
                   full_cmc=[float(x) for x in full['cmc']])
        print(f'PI protocol (top-{k}): mAP {res["mAP"]:.1%} R1 {res["rank1"]:.1%} '
              f'({pi["num_valid"]} queries, skipped {pi["skipped_no_positive"]} without positive, '
              f'{pi["skipped_short"]} short) | full gallery: mAP {full["mAP"]:.1%} '
              f'R1 {full["rank1"]:.1%}')
        return res
