#!/usr/bin/env python
"""Convert an official DSM / BE (TBE) checkpoint into an mm-ext ``VideoContrastive`` checkpoint.

The releases save ``{'model': DataParallel(TCN(backbone)).state_dict(), ...}``; the key layout of
each backbone is mapped as documented in ``mm_ext/core/video/convert.py``:

    python tools/convert_dsm_be_checkpoint.py ckpt_best.pth.tar dsm_i3d.pth --arch i3d
    python tools/convert_dsm_be_checkpoint.py c3d_pt.pth dsm_c3d.pth --arch c3d

``--arch i3d`` loads into ``BNInceptionI3D`` (configs/mmaction/dsm/dsm_bninception-i3d_*),
``c3d`` into ``BNC3D`` (dsm_c3d_*), ``r3d`` into mmaction's ``ResNet3d`` set up Hara-style
(dsm_r3d-18_* / dsm_r3d-34_*), ``r2p1d`` into ``ResNet2Plus1dRelease`` (dsm_r2plus1d-10_*: the
release's shortcut widths and no stem pool). The output's ``backbone.*`` keys also load into the
fine-tuning recognizers (``load_from``). The release never saved the key encoder: it is written as
a copy of the query encoder (MoCo's start). The MoCo memory queue (checkpoint entry ``contrast``,
K x 128) becomes ``queue``; its write pointer is not in the checkpoint and restarts at
``--queue-ptr`` (default 0); the config's ``queue_len`` must equal K (printed). ``--no-queue``
leaves the queue out (it then starts fresh: load with ``strict=False`` / ``load_from``). The
release pickles its argparse options into the checkpoint, so reading it needs ``--trusted`` (full
unpickling: only for files you trust).
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mm_ext.core.video.convert import (ARCHES, convert_official_queue,  # noqa: E402
                                       convert_official_state_dict)


def load_official(path, trusted=False, with_contrast=False):
    """The model state dict of an official checkpoint (dict with 'model' / 'state_dict' or bare);
    with ``with_contrast`` also its ``'contrast'`` (memory) state dict or None."""
    try:
        obj = torch.load(path, map_location='cpu', weights_only=not trusted)
    except Exception as e:  # noqa: BLE001  (pickle errors have many types)
        if trusted:
            raise
        raise SystemExit(f'{path}: cannot be read with weights_only=True ({type(e).__name__}: '
                         f'{str(e).splitlines()[0][:200]}); the release pickles extra objects - '
                         'rerun with --trusted if you trust the file') from e
    contrast = obj.get('contrast') if isinstance(obj, dict) else None
    for key in ('model', 'state_dict'):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise SystemExit(f'{path}: no state dict found (expected a dict of tensors, or one under '
                         "'model' / 'state_dict')")
    if with_contrast:
        return obj, (contrast if isinstance(contrast, dict) else None)
    return obj


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src', help='official checkpoint (.pth / .pth.tar)')
    p.add_argument('dst', help='output mm-ext checkpoint (.pth)')
    p.add_argument('--arch', required=True, choices=ARCHES)
    p.add_argument('--no-key-encoder', action='store_true',
                   help='write only backbone.* / neck.* (e.g. for fine-tuning)')
    p.add_argument('--no-queue', action='store_true',
                   help="do not convert the checkpoint's memory queue ('contrast')")
    p.add_argument('--queue-ptr', type=int, default=0,
                   help='queue write position to resume from (not saved by the release)')
    p.add_argument('--trusted', action='store_true', help='full unpickling of the source file')
    a = p.parse_args(argv)
    sd, contrast = load_official(a.src, a.trusted, with_contrast=True)
    try:
        out = convert_official_state_dict(sd, a.arch, with_key_encoder=not a.no_key_encoder)
        if contrast is not None and not a.no_queue and not a.no_key_encoder:
            out.update(convert_official_queue(contrast, a.queue_ptr))
    except (KeyError, ValueError) as e:
        raise SystemExit(f'{a.src}: {e.args[0]}') from e
    dst = Path(a.dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, suffix='.pth')
    os.close(fd)
    torch.save({'state_dict': out, 'meta': {'converted_from': str(a.src), 'arch': a.arch}}, tmp)
    os.replace(tmp, dst)
    n_bb = sum(k.startswith('backbone.') for k in out)
    queue = (f"K = {len(out['queue'])} from position {a.queue_ptr} (set queue_len="
             f"{len(out['queue'])})") if 'queue' in out else 'not converted'
    print(f'{dst}: {n_bb} backbone tensors, projection head '
          f"{'yes' if 'neck.fc.weight' in out else 'no'}, key encoder "
          f"{'copied' if not a.no_key_encoder else 'omitted'}, queue {queue} (arch {a.arch})")
    return 0


if __name__ == '__main__':
    sys.exit(main())
