"""Base engine: torchreid's template with fast evaluation, atomic float-only checkpoints and
per-image side labels."""
import os
import os.path as osp
import shutil
import time
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
import torchreid

from reid_ext.core import evaluate_rank_fast
from reid_ext.datasets.side_labels import SideLabels

__all__ = ['ReidExtEngine']


def _unwrap(model):
    return model.module if isinstance(model, torch.nn.DataParallel) else model


class ReidExtEngine(torchreid.engine.Engine):
    """``torchreid.engine.Engine`` with the changes every reid_ext engine needs.

    - ``_evaluate`` ranks with :func:`reid_ext.core.evaluate_rank_fast` (same numbers as
      torchreid's ``evaluate_rank``, much faster) and keeps the results in :attr:`results`
      (``dataset -> {'mAP', 'rank1', 'cmc'}``, Python floats).
    - ``save_model`` writes Python floats only (loadable by torch's weights-only unpickler),
      tolerates a ``None`` scheduler and writes through a temporary file + rename.
    - :attr:`side_labels` holds extra per-image labels (name -> :class:`SideLabels`), looked up
      from the batch's ``impath`` with :meth:`side_label`, so samples keep torchreid's 4 fields.

    Args:
        datamanager (ImageDataManager): torchreid data manager.
        use_gpu (bool): Defaults to False.
        side_labels (dict, optional): name -> SideLabels.
    """

    def __init__(self, datamanager, use_gpu: bool = False,
                 side_labels: Optional[Dict[str, SideLabels]] = None):
        super().__init__(datamanager, use_gpu)
        self.side_labels: Dict[str, SideLabels] = dict(side_labels or {})
        self.results: Dict[str, dict] = {}
        #: set True to keep each target's (Q, G) distance matrix in :attr:`distmats` after a test
        self.keep_distmat = False
        self.distmats: Dict[str, np.ndarray] = {}

    def side_label(self, name: str, data: dict) -> torch.Tensor:
        """(B,) int64 side labels ``name`` of a batch (``missing`` value where unknown)."""
        if name not in self.side_labels:
            raise KeyError(f'no side labels {name!r}; available: {sorted(self.side_labels)}')
        labels = self.side_labels[name].lookup(data['impath'])
        return labels.cuda() if self.use_gpu else labels

    def save_model(self, epoch, rank1, save_dir, is_best=False):
        for name in self.get_model_names():
            sched = self._scheds[name]
            state = {
                'state_dict': _unwrap(self._models[name]).state_dict(),
                'epoch': int(epoch) + 1,
                'rank1': float(rank1),
                'optimizer': self._optims[name].state_dict(),
                'scheduler': sched.state_dict() if sched is not None else None,
            }
            out_dir = osp.join(save_dir, name)
            os.makedirs(out_dir, exist_ok=True)
            fpath = osp.join(out_dir, f'model.pth.tar-{int(epoch) + 1}')
            tmp = fpath + '.tmp'
            torch.save(state, tmp)
            os.replace(tmp, fpath)
            print(f'Checkpoint saved to "{fpath}"')
            if is_best:
                shutil.copy(fpath, osp.join(out_dir, 'model-best.pth.tar'))

    @torch.no_grad()
    def _features(self, loader):
        feats, pids, camids = [], [], []
        for data in loader:
            imgs, p, c = self.parse_data_for_eval(data)
            if self.use_gpu:
                imgs = imgs.cuda()
            feats.append(self.extract_features(imgs).cpu())
            pids.append(p.cpu().numpy())
            camids.append(c.cpu().numpy())
        return torch.cat(feats), np.concatenate(pids), np.concatenate(camids)

    @torch.no_grad()
    def _evaluate(self, dataset_name='', query_loader=None, gallery_loader=None,
                  dist_metric='euclidean', normalize_feature=False, visrank=False, visrank_topk=10,
                  save_dir='', use_metric_cuhk03=False, ranks=(1, 5, 10, 20), rerank=False,
                  **kwargs):
        t = time.time()
        qf, q_pids, q_camids = self._features(query_loader)
        gf, g_pids, g_camids = self._features(gallery_loader)
        t_feat = time.time() - t
        if normalize_feature:
            qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
        distmat = torchreid.metrics.compute_distance_matrix(qf, gf, dist_metric)
        if rerank:
            distmat_qq = torchreid.metrics.compute_distance_matrix(qf, qf, dist_metric)
            distmat_gg = torchreid.metrics.compute_distance_matrix(gf, gf, dist_metric)
            distmat = torch.as_tensor(torchreid.utils.re_ranking(distmat, distmat_qq, distmat_gg))
        distmat = distmat.numpy()
        t = time.time()
        cmc, mAP = evaluate_rank_fast(distmat, q_pids, g_pids, q_camids, g_camids,
                                      use_metric_cuhk03=use_metric_cuhk03)
        print(f'** Results ({dataset_name}: {qf.shape[0]} queries x {gf.shape[0]} gallery, '
              f'features {t_feat:.1f}s, ranking {time.time() - t:.2f}s) **')
        print(f'mAP: {mAP:.1%}')
        for r in ranks:
            if r - 1 < len(cmc):
                print(f'Rank-{r:<3}: {cmc[r - 1]:.1%}')
        if self.keep_distmat:
            self.distmats[dataset_name] = distmat
        self.results[dataset_name] = dict(mAP=float(mAP), rank1=float(cmc[0]),
                                          cmc=[float(x) for x in cmc])
        if visrank:
            torchreid.utils.visualize_ranked_results(
                distmat, self.datamanager.fetch_test_loaders(dataset_name),
                self.datamanager.data_type, width=self.datamanager.width,
                height=self.datamanager.height, save_dir=osp.join(save_dir, 'visrank_' + dataset_name),
                topk=visrank_topk)
        return float(cmc[0]), float(mAP)
