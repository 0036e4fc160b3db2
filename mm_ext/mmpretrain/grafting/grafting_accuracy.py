"""Top-1 of every ring member, their mean and their ensemble."""
from typing import List, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from mm_ext._registry import register


@register(METRICS)
class GraftingAccuracy(BaseMetric):
    """Reads the ``net_scores`` (N, C) that ``GraftingClassifier`` attaches to each prediction.

    Keys (prefix ``accuracy``): ``top1`` = mean of the members' top-1 (%), ``net<k>_top1``,
    ``ensemble_top1`` (mean softmax), ``best_net_top1``.
    """
    default_prefix = 'accuracy'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            if 'net_scores' not in ds:
                raise KeyError('GraftingAccuracy: predictions carry no net_scores; the model must be a '
                               'GraftingClassifier')
            self.results.append((ds['net_scores'].cpu(), int(ds['gt_label'].reshape(-1)[0])))

    def compute_metrics(self, results: List) -> dict:
        scores = torch.stack([r[0] for r in results], 1)  # (N, M, C)
        gt = torch.tensor([r[1] for r in results])
        per = [(s.argmax(1) == gt).float().mean().item() * 100 for s in scores]
        out = {f'net{k}_top1': v for k, v in enumerate(per)}
        out['top1'] = sum(per) / len(per)
        out['best_net_top1'] = max(per)
        out['ensemble_top1'] = (scores.mean(0).argmax(1) == gt).float().mean().item() * 100
        return out
