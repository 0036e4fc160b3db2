"""CrowdHuman ``.odgt``: one JSON object per line (``ID``, ``gtboxes`` with ``tag``/``fbox``/``vbox``/...)."""
import json
import os.path as osp
from typing import List, Optional

from .errors import DataFormatError, MissingDataFileError

__all__ = ['read_odgt', 'check_odgt_record']

_BOX_KEYS = ('fbox', 'vbox', 'hbox')
_HINT = ('CrowdHuman .odgt lines are JSON objects like {"ID": "273271,c9db000d5146c15", "gtboxes": '
         '[{"tag": "person", "fbox": [x, y, w, h], "vbox": [...], "extra": {...}}]}')


def _box(path, line, value, field):
    if not isinstance(value, (list, tuple)) or len(value) != 4 or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise DataFormatError(path, f'expected 4 numbers [x, y, w, h], got {value!r}', line=line, field=field,
                              hint=_HINT)
    if value[2] < 0 or value[3] < 0:
        raise DataFormatError(path, f'negative width/height in {list(value)}', line=line, field=field)


def check_odgt_record(path, line: int, rec, box_keys=('fbox', )) -> None:
    """Check one parsed record; ``box_keys`` are the box fields that must be present."""
    if not isinstance(rec, dict):
        raise DataFormatError(path, f'expected a JSON object, got {type(rec).__name__}', line=line, hint=_HINT)
    if 'ID' not in rec:
        raise DataFormatError(path, 'missing', line=line, field='ID', hint=_HINT)
    if not isinstance(rec['ID'], str) or not rec['ID']:
        raise DataFormatError(path, f'expected a non-empty string, got {rec["ID"]!r}', line=line, field='ID')
    boxes = rec.get('gtboxes')
    if not isinstance(boxes, list):
        raise DataFormatError(path, 'missing' if boxes is None else f'expected a list, got {type(boxes).__name__}',
                              line=line, field='gtboxes', hint=_HINT)
    for i, b in enumerate(boxes):
        if not isinstance(b, dict):
            raise DataFormatError(path, f'expected an object, got {b!r}', line=line, field=f'gtboxes[{i}]')
        if not isinstance(b.get('tag'), str):
            raise DataFormatError(path, 'missing or not a string', line=line, field=f'gtboxes[{i}].tag', hint=_HINT)
        for k in _BOX_KEYS:
            if k in b:
                _box(path, line, b[k], f'gtboxes[{i}].{k}')
            elif k in box_keys:
                raise DataFormatError(path, 'missing', line=line, field=f'gtboxes[{i}].{k}', hint=_HINT)
        extra = b.get('extra', {})
        if not isinstance(extra, dict):
            raise DataFormatError(path, f'expected an object, got {extra!r}', line=line, field=f'gtboxes[{i}].extra')


def read_odgt(path, img_dir: Optional[str] = None, img_ext: str = '.jpg', box_keys=('fbox', )) -> List[dict]:
    """Parse and check an ``.odgt`` file; optionally check each record's image exists.

    Args:
        path (str): the ``.odgt`` file.
        img_dir (str, optional): folder of the images (``<img_dir>/<ID><img_ext>``); None skips the check.
        box_keys (tuple): box fields every ``gtboxes`` entry must have.

    Returns:
        list[dict]: the records, in file order (trailing blank lines skipped).

    Raises:
        DataFormatError: a line is not JSON or a field is missing/wrong (file, line, field named).
        MissingDataFileError: an image named by a record does not exist (file, line, ID named).
    """
    path = str(path)
    if not osp.isfile(path):
        raise MissingDataFileError(path, path, problem='annotation file does not exist')
    out, blank = [], None
    with open(path, encoding='utf-8') as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                blank = blank or n
                continue
            if blank is not None:  # readers split the text on newlines: only trailing blank lines are allowed
                raise DataFormatError(path, 'empty line inside the file', line=blank, hint=_HINT)
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as e:
                raise DataFormatError(path, f'not valid JSON ({e.msg} at column {e.colno}; truncated line?)',
                                      line=n, hint=_HINT) from None
            check_odgt_record(path, n, rec, box_keys)
            if img_dir is not None:
                img = osp.join(img_dir, rec['ID'] + img_ext)
                if not osp.isfile(img):
                    raise MissingDataFileError(path, img, line=n, field='ID',
                                               problem=f'record {rec["ID"]!r} names image {img}, which does not exist')
            out.append(rec)
    return out
