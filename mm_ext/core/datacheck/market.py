"""Market-1501 image names: ``<pid>_c<camera>s<sequence>_<frame>_<box>.jpg`` (e.g. ``0002_c1s1_000451_03.jpg``)."""
import os
import os.path as osp
import re
from typing import List, Tuple

from .errors import DataFormatError

__all__ = ['MARKET_PATTERN', 'parse_market_name', 'check_market_dir']

MARKET_PATTERN = '<pid>_c<camera>s<seq>_<frame>_<box>.jpg, e.g. 0002_c1s1_000451_03.jpg (pid -1 = junk, 0 = distractor)'
# what torchreid's Market1501.process_dir reads (searched in the path): the pid and the camera digit
_RE = re.compile(r'^(-1|\d+)_c(\d)')


def parse_market_name(path, max_pid: int = 1501, num_cams: int = 6) -> Tuple[int, int]:
    """(pid, camera 1-based) of a Market-1501 file name; DataFormatError naming the file otherwise."""
    name = osp.basename(str(path))
    m = _RE.match(name)
    if m is None:
        raise DataFormatError(path, f'file name {name!r} does not parse', field='file name',
                              hint=f'expected {MARKET_PATTERN}')
    pid, cam = int(m.group(1)), int(m.group(2))
    if not (pid == -1 or 0 <= pid <= max_pid):
        raise DataFormatError(path, f'person id {pid} outside -1..{max_pid}', field='pid',
                              hint=f'expected {MARKET_PATTERN}')
    if not 1 <= cam <= num_cams:
        raise DataFormatError(path, f'camera {cam} outside 1..{num_cams}', field='camera',
                              hint=f'expected {MARKET_PATTERN}')
    return pid, cam


def check_market_dir(folder, **kwargs) -> List[Tuple[str, int, int]]:
    """Parse every ``*.jpg`` in ``folder`` (sorted); the first bad name raises."""
    return [(osp.join(folder, n), *parse_market_name(osp.join(folder, n), **kwargs))
            for n in sorted(os.listdir(folder)) if n.endswith('.jpg')]
