"""Pipeline step choosing which CrowdHuman box (full / visible / head) is the training box."""
from mmcv.transforms import BaseTransform

from mmdet.registry import TRANSFORMS

from mm_ext._registry import register


@register(TRANSFORMS)
class NOHSelectBodyBox(BaseTransform):
    """Use CrowdHuman's visible-body (or head) box as each instance's ``bbox``.

    mmdet's :class:`CrowdHumanDataset` puts the full body (``fbox``) into
    ``instance['bbox']`` and keeps ``fbox`` / ``vbox`` / ``hbox`` (x1, y1, x2, y2) as
    extra per-instance fields; this step, placed *before* ``LoadAnnotations``,
    copies the chosen one into ``bbox``, so a detector trains (and the test
    pipeline loads GTs) on visible bodies. Evaluate the same box with
    ``CrowdHumanRecallMetric(gt_box_key='vbox')``.

    Required Keys: ``instances`` (list of dicts with the chosen key).
    Modified Keys: ``instances[*]['bbox']``.

    Args:
        box_key (str): ``'vbox'``, ``'fbox'`` or ``'hbox'``. Defaults to ``'vbox'``.
    """

    def __init__(self, box_key: str = 'vbox') -> None:
        if box_key not in ('vbox', 'fbox', 'hbox'):
            raise ValueError(f"box_key must be 'vbox', 'fbox' or 'hbox', got {box_key!r}")
        self.box_key = box_key

    def transform(self, results: dict) -> dict:
        for i, inst in enumerate(results.get('instances', [])):
            if self.box_key not in inst:
                raise ValueError(f'instance {i} of {results.get("img_path", "?")} has no {self.box_key!r}: '
                                 'NOHSelectBodyBox needs mmdet CrowdHumanDataset annotations')
            inst['bbox'] = list(inst[self.box_key])
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(box_key={self.box_key!r})'
