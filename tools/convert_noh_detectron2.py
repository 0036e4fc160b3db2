#!/usr/bin/env python
"""Convert an official NOH-NMS (detectron2) checkpoint into an mm-ext NOH detector checkpoint.

The authors' released CrowdHuman weights (``model_final.pth`` of
TencentYoutuResearch/PedestrianDetection-NohNMS) load, after conversion, into
``configs/mmdet/noh/noh-nms_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py`` (the Greedy-NMS
baseline checkpoint into ``greedy_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py``); the key
mapping is documented in ``mm_ext/core/nms/convert.py``. Then, with CrowdHuman under
``data/CrowdHuman/``, the released numbers are checked without training:

    python tools/convert_noh_detectron2.py model_final.pth noh_r50_crowdhuman.pth
    python tools/test.py configs/mmdet/noh/noh-nms_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py \\
        noh_r50_crowdhuman.pth

For the exact official RPN use the ``..._rpn-topk-all-levels`` config. detectron2 checkpoints
may pickle non-tensor objects (optimizer / scheduler state): reading those needs ``--trusted``
(full unpickling: only for files you trust); ``.pkl`` files (numpy arrays) always do.
The output is written to a temporary file and renamed (atomic).
"""
import argparse
import os
import pickle
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mm_ext.core.nms.convert import convert_detectron2_noh  # noqa: E402


def load_official(path, trusted=False):
    """The model state dict of a detectron2 checkpoint (``{'model': ...}`` or bare; .pth or .pkl)."""
    path = str(path)
    if path.endswith('.pkl'):
        if not trusted:
            raise SystemExit(f'{path}: a .pkl checkpoint is a full pickle; rerun with --trusted if you trust it')
        with open(path, 'rb') as f:
            obj = pickle.load(f, encoding='latin1')
    else:
        try:
            obj = torch.load(path, map_location='cpu', weights_only=not trusted)
        except Exception as e:  # noqa: BLE001  (unpickling errors have many types)
            if trusted:
                raise
            raise SystemExit(f'{path}: cannot be read with weights_only=True ({type(e).__name__}: '
                             f'{str(e).splitlines()[0][:200]}); detectron2 checkpoints may pickle optimizer '
                             'state - rerun with --trusted if you trust the file') from e
    if isinstance(obj, dict) and isinstance(obj.get('model'), dict):
        obj = obj['model']
    if not isinstance(obj, dict) or not obj:
        raise SystemExit(f"{path}: no state dict found (expected {{'model': {{name: tensor}}}} or a bare dict)")
    return obj


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src', help='official detectron2 checkpoint (.pth or .pkl)')
    p.add_argument('dst', help='output mmengine checkpoint (.pth)')
    p.add_argument('--trusted', action='store_true', help='allow full unpickling of src')
    a = p.parse_args(argv)
    state = load_official(a.src, a.trusted)
    try:
        converted, dropped = convert_detectron2_noh(state)
    except ValueError as e:
        raise SystemExit(f'{a.src}: {e}') from e
    with_noh = any(k.startswith('roi_head.bbox_head.noh_fcs') for k in converted)
    meta = dict(source=str(a.src), converted_from='detectron2 NOH-NMS', with_noh=with_noh)
    dst = Path(a.dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix='.' + dst.name, suffix='.tmp')
    os.close(fd)
    try:
        torch.save({'state_dict': converted, 'meta': meta}, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    kind = 'NOH-NMS' if with_noh else 'Greedy-NMS baseline (no overlap head)'
    print(f'{dst}: {len(converted)} tensors ({kind}); dropped {dropped or "nothing"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
