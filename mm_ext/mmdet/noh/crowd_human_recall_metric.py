"""mmdet's CrowdHuman metric plus the Recall of the NOH-NMS paper."""
import json
import os.path as osp
from typing import Dict, List, Union

from mmengine.fileio import get_text, load

from mmdet.evaluation.metrics import CrowdHumanMetric
from mmdet.evaluation.metrics.crowdhuman_metric import PERSON_CLASSES, Image
from mmdet.registry import METRICS

from mm_ext._registry import register
from mm_ext.core.datacheck import read_odgt


@register(METRICS)
class CrowdHumanRecallMetric(CrowdHumanMetric):
    """:class:`CrowdHumanMetric` (AP, MR, JI) with ``'Recall'`` added.

    `NOH-NMS <https://arxiv.org/abs/2007.13376>`_ reports, besides AP and MR^-2, the
    recall of the *whole* detection list: matched detections / non-ignored GTs
    after all detections, sorted by score, went through the same Caltech-style
    matching (IoU ``iou_thres``, ignore regions by IoA) as AP and MR. Output key
    ``crowd_human/Recall`` (in [0, 1], 4 decimals like the others).

    Args:
        metric (str | list[str]): any of ``'AP'``, ``'MR'``, ``'JI'``, ``'Recall'``.
            Defaults to ``['AP', 'MR', 'JI', 'Recall']``.
        gt_box_key (str): the ODGT box evaluated as the body: ``'fbox'`` (full body,
            mmdet's only choice) or ``'vbox'`` (visible body; pair it with
            ``NOHSelectBodyBox(box_key='vbox')`` in the pipelines). Defaults to ``'fbox'``.
        **kwargs: the other arguments of :class:`CrowdHumanMetric`.

    Note:
        As for the parent, the validation dataloader must not shuffle (the ODGT order
        is asserted).
    """

    def __init__(self, ann_file: str, metric: Union[str, List[str]] = ('AP', 'MR', 'JI', 'Recall'),
                 gt_box_key: str = 'fbox', **kwargs) -> None:
        if gt_box_key not in ('fbox', 'vbox'):
            raise ValueError(f"gt_box_key must be 'fbox' or 'vbox', got {gt_box_key!r}")
        self.gt_box_key = gt_box_key
        metrics = [metric] if isinstance(metric, str) else list(metric)
        self.with_recall = 'Recall' in metrics
        parent = [m for m in metrics if m != 'Recall']
        if not parent and self.with_recall:
            parent = ['AP']  # the parent needs one metric; AP shares the matching we need
            self._drop_ap = True
        else:
            self._drop_ap = False
        super().__init__(ann_file=ann_file, metric=parent, **kwargs)
        self._score_list = None
        self._samples = None

    def load_eval_samples(self, result_file):
        if self.gt_box_key == 'fbox':
            self._samples = super().load_eval_samples(result_file)
            return self._samples
        # the parent reads 'fbox' as the body: evaluate the visible box under that name
        if osp.isfile(self.ann_file):  # local file: named errors (file, line, field) for malformed records
            gt_records = read_odgt(self.ann_file, box_keys=(self.gt_box_key, ))
        else:
            gt_lines = get_text(self.ann_file, backend_args=self.backend_args).strip().split('\n')
            gt_records = [json.loads(line) for line in gt_lines]
        for rec in gt_records:
            for i, g in enumerate(rec.get('gtboxes', [])):
                if self.gt_box_key not in g:
                    raise ValueError(f"{self.ann_file}: image {rec.get('ID')} box {i} has no "
                                     f"{self.gt_box_key!r}; use gt_box_key='fbox' or fix the annotation")
                g['fbox'] = g[self.gt_box_key]
        pred_records = load(result_file, backend_args=self.backend_args)
        samples = {}
        for gt, pred in zip(gt_records, pred_records):
            if gt['ID'] != pred['ID']:
                raise ValueError('prediction and annotation order differ: set '
                                 'val_dataloader.sampler.shuffle=False and try again')
            samples[pred['ID']] = Image(self.eval_mode)
            samples[pred['ID']].load(gt, 'box', None, PERSON_CLASSES, True)
            samples[pred['ID']].load(pred, 'box', None, PERSON_CLASSES, False)
            samples[pred['ID']].clip_all_boader()
        self._samples = samples
        return samples

    def compare(self, samples):
        self._score_list = super().compare(samples)
        return self._score_list

    @staticmethod
    def eval_recall(score_list, gt_num: int) -> float:
        """Recall after the whole score-sorted detection list.

        Args:
            score_list (list[tuple]): matching results ``(dtbox, label, img_id)``;
                label 1 = true positive, 0 = false positive, other = ignored.
            gt_num (int): number of non-ignored GT boxes.

        Returns:
            float: tp / gt_num (0 when there is no GT).
        """
        tp = sum(1 for item in score_list if item[1] == 1)
        return tp / gt_num if gt_num > 0 else 0.0

    def compute_metrics(self, results: list) -> Dict[str, float]:
        self._score_list = self._samples = None
        out = super().compute_metrics(results)
        if self.with_recall and not self.format_only:
            samples = self._samples
            score_list = self._score_list if self._score_list is not None else self.compare(samples)
            gt_num = sum(int(s.gt_num) - int(s.ign_num) for s in samples.values())
            out['Recall'] = float(f'{round(self.eval_recall(score_list, gt_num), 4)}')
        if self._drop_ap:
            out.pop('mAP', None)
        self._score_list = self._samples = None
        return out
