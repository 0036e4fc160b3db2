"""mmaction2 video lists: one ``<video path> <label>`` per line (``VideoDataset``)."""
import os.path as osp
from typing import List, Optional, Tuple

from .errors import DataFormatError, MissingDataFileError

__all__ = ['read_video_list']


def read_video_list(path, video_prefix: Optional[str] = None, delimiter: str = ' ', multi_class: bool = False,
                    num_classes: Optional[int] = None, check_files: bool = True) -> List[Tuple[int, str, list]]:
    """Parse and check a video list.

    Returns:
        list[(line number, video path (prefix joined), labels)]

    Raises:
        DataFormatError: wrong number of fields or a label that is not a non-negative integer
            (below ``num_classes`` when given).
        MissingDataFileError: the video does not exist or is empty (list file and line named).
    """
    path = str(path)
    if not osp.isfile(path):
        raise MissingDataFileError(path, path, problem='video list does not exist')
    hint = f'expected "<video> <label>" per line (delimiter {delimiter!r})'
    out = []
    with open(path, encoding='utf-8') as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line:
                continue
            parts = line.split(delimiter)
            if len(parts) < 2 or (not multi_class and len(parts) != 2):
                raise DataFormatError(path, f'{len(parts)} field(s) in {line!r}', line=n, hint=hint)
            labels = []
            for p in parts[1:]:
                try:
                    v = int(p)
                except ValueError:
                    raise DataFormatError(path, f'{p!r} is not an integer', line=n, field='label',
                                          hint=hint) from None
                if v < 0 or (num_classes is not None and v >= num_classes):
                    raise DataFormatError(path, f'{v} outside [0, {num_classes})', line=n, field='label')
                labels.append(v)
            video = parts[0] if video_prefix is None else osp.join(video_prefix, parts[0])
            if check_files:
                if not osp.isfile(video):
                    raise MissingDataFileError(path, video, line=n, field='video',
                                               problem=f'names video {video}, which does not exist')
                if osp.getsize(video) == 0:
                    raise DataFormatError(path, f'video {video} is empty (0 bytes)', line=n, field='video')
            out.append((n, video, labels))
    return out
