"""Nearest-neighbour evaluation: retrieval R@1/5/10/20/50 and weighted k-NN accuracy (test vs train)."""
from typing import Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from mmaction.registry import METRICS
from mm_ext._registry import register
from mm_ext.core.video import knn_classify, retrieval_recall

__all__ = ['VideoRetrievalMetric']


@register(METRICS)
class VideoRetrievalMetric(BaseMetric):
    """Recall@k of nearest-neighbour retrieval and k-NN accuracy on pooled backbone features.

    The evaluated dataloader must list the queries (test split) first and the
    gallery (train split) after them, unshuffled, e.g. a ``ConcatDataset`` of
    the two ``VideoDataset`` s; the model must put a (C,) feature into each data
    sample's ``pred_feature`` (``VideoContrastive`` in 'predict' mode does).
    Multi-clip retrieval: sample several clips per video in the test pipeline
    (``SampleFrames(num_clips=N, test_mode=True)``); ``VideoContrastive``
    averages the pooled features of a video's clips into its one feature.

    Args:
        num_queries (int, optional): how many leading samples are queries.
        query_ann_file (str, optional): or the query list file; its number of
            non-empty lines is used. One of the two is required.
        topk (Sequence[int]): k values. Defaults to (1, 5, 10, 20, 50).
        knn (Sequence[int]): k values of the weighted k-NN classifier
            (:func:`mm_ext.core.video.knn_classify`), reported as 'kNN@k'
            top-1 accuracy (%). Defaults to () (off).
        knn_temperature (float): k-NN vote temperature. Defaults to 0.07.
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): metric name prefix. Defaults to 'retrieval'.
    """

    default_prefix = 'retrieval'

    def __init__(self, num_queries: Optional[int] = None, query_ann_file: Optional[str] = None,
                 topk: Sequence[int] = (1, 5, 10, 20, 50), knn: Sequence[int] = (),
                 knn_temperature: float = 0.07, collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if num_queries is None and query_ann_file is None:
            raise ValueError('VideoRetrievalMetric: set num_queries or query_ann_file (the test list '
                             'that comes first in the evaluated dataloader)')
        self.num_queries = num_queries
        self.query_ann_file = query_ann_file
        self.topk = tuple(topk)
        self.knn = tuple(knn)
        self.knn_temperature = knn_temperature

    def process(self, data_batch, data_samples: Sequence) -> None:
        for ds in data_samples:
            feat = ds['pred_feature'] if isinstance(ds, dict) else ds.pred_feature
            label = ds['gt_label'] if isinstance(ds, dict) else ds.gt_label
            self.results.append((feat.detach().cpu().float(), int(torch.as_tensor(label).view(-1)[0])))

    def _n_queries(self) -> int:
        if self.num_queries is not None:
            return int(self.num_queries)
        with open(self.query_ann_file) as f:
            return sum(1 for line in f if line.strip())

    def compute_metrics(self, results: list) -> dict:
        nq = self._n_queries()
        if not 0 < nq < len(results):
            raise ValueError(f'VideoRetrievalMetric: {nq} queries but {len(results)} samples were '
                             'evaluated; the dataloader must hold queries then gallery')
        feats = torch.stack([r[0] for r in results])
        labels = torch.tensor([r[1] for r in results])
        out = retrieval_recall(feats[:nq], labels[:nq], feats[nq:], labels[nq:], self.topk)
        n_cls = int(labels.max()) + 1
        for k in self.knn:
            votes = knn_classify(feats[:nq], feats[nq:], labels[nq:], k, self.knn_temperature, n_cls)
            out[f'kNN@{k}'] = 100.0 * (votes.argmax(1) == labels[:nq]).float().mean().item()
        return out
