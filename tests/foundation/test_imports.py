"""Every host imports next to mm_ext / reid_ext, in a fresh interpreter."""
import subprocess
import sys

import pytest


def _run(code):
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_all_hosts_import_next_to_mm_ext():
    out = _run(
        'import mm_ext, reid_ext\n'
        'import mmcv, mmcv.ops, mmengine, mmdet, mmdet.models, mmaction, mmaction.models\n'
        'import mmpretrain, mmpretrain.models, torchreid\n'
        'print(mmcv.__version__, mmengine.__version__, mmdet.__version__, mmaction.__version__,'
        ' mmpretrain.__version__)\n')
    assert out.split() == ['2.1.0', '0.10.7', '3.3.0', '1.2.0', '1.2.0']


def test_mm_ext_imports_no_host():
    out = _run('import sys, mm_ext\n'
               'print(sorted(m for m in ("mmdet", "mmaction", "mmpretrain", "torchreid", "mmcv")'
               ' if m in sys.modules))')
    assert out.strip() == '[]'


def test_mmcv_ops_nms_runs_on_cpu():
    torch = pytest.importorskip('torch')
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    _, keep = nms(boxes, scores, 0.5)
    assert keep.tolist() == [0, 2]


def test_missing_drn_is_stubbed_with_a_clear_error():
    out = _run(
        'import mm_ext, importlib, mmaction.models\n'
        'from mmaction.models.localizers.drn.drn import DRN\n'
        'try:\n    DRN()\nexcept ImportError as e:\n    print("refused", "2714" in str(e))\n')
    assert out.strip() == 'refused True'


def test_one_opencv_distribution():
    from importlib import metadata
    names = {d.metadata['Name'].lower() for d in metadata.distributions()}
    cv = sorted(n for n in names if n.startswith('opencv'))
    assert len(cv) == 1, f'several OpenCV distributions share cv2/: {cv}'
    import cv2
    assert cv2.imread is not None


def test_torchreid_cuhk03_metric_path_runs_on_numpy2():
    """torchreid's CUHK03 evaluator uses ``np.bool`` (removed in numpy 1.24, back in numpy 2)."""
    import numpy as np
    from torchreid.reid.metrics.rank import eval_cuhk03
    dist = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    q_pids, g_pids = np.array([0, 1]), np.array([0, 1, 1])
    cmc, mAP = eval_cuhk03(dist, q_pids, g_pids, np.array([0, 0]), np.array([1, 1, 1]), max_rank=3)
    # query 0: its only match is ranked first; query 1: one of its two matches is sampled,
    # ranked 2nd or 1st depending on the draw -> top-1 over the two queries is 0.5 or 1.0
    assert cmc[0] in (0.5, 1.0) and cmc[-1] == 1.0


def test_pkg_resources_is_available_for_mmengine():
    """mmengine resolves ``mmdet::`` base configs through pkg_resources (setuptools < 81)."""
    from mmengine.utils import get_installed_path
    assert get_installed_path('mmdet').endswith('mmdet')
