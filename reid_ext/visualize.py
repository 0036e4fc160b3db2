"""One picture of ranked retrieval results: a row per query, its top-k gallery matches framed
green (same identity) or red (different identity)."""
import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ['save_ranked_grid']


def save_ranked_grid(distmat: np.ndarray, query: Sequence, gallery: Sequence, out_path: str,
                     query_ids: Sequence[int], topk: int = 8, size=(128, 64), border: int = 4,
                     skip_same_camera: bool = True) -> str:
    """Write the grid PNG and return its path.

    Args:
        distmat (ndarray): (Q, G) distances.
        query (Sequence): Q items ``(img_path, pid, camid, ...)`` (torchreid dataset items).
        gallery (Sequence): G items, same format.
        out_path (str): PNG file (written through a temporary file + rename).
        query_ids (Sequence[int]): rows of ``distmat`` to show.
        topk (int): matches per query. Defaults to 8.
        size (tuple): (height, width) of each tile. Defaults to (128, 64).
        border (int): frame width in pixels. Defaults to 4.
        skip_same_camera (bool): hide same-identity same-camera items, as the Market protocol
            does. Defaults to True.
    """
    h, w = size
    gap = 12
    canvas = Image.new('RGB', ((topk + 1) * (w + 2 * border) + gap, len(query_ids) * (h + 2 * border)),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for row, qi in enumerate(query_ids):
        qpath, qpid, qcam = query[qi][:3]
        y = row * (h + 2 * border)
        canvas.paste(Image.open(qpath).convert('RGB').resize((w, h)), (border, y + border))
        order = np.argsort(distmat[qi], kind='stable')
        shown = 0
        for gi in order:
            gpath, gpid, gcam = gallery[gi][:3]
            if skip_same_camera and gpid == qpid and gcam == qcam:
                continue
            x = (shown + 1) * (w + 2 * border) + gap
            color = (0, 170, 0) if gpid == qpid else (210, 0, 0)
            draw.rectangle((x, y, x + w + 2 * border - 1, y + h + 2 * border - 1), fill=color)
            canvas.paste(Image.open(gpath).convert('RGB').resize((w, h)), (x + border, y + border))
            shown += 1
            if shown == topk:
                break
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = out_path + '.tmp.png'
    canvas.save(tmp)
    os.replace(tmp, out_path)
    return out_path
