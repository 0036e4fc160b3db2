"""The scene-bias experiment's report: per-seed pairing, intervals and the verdict rule."""
import importlib.util
import json
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'experiments' / 'scene_bias.py'


def _tool():
    spec = importlib.util.spec_from_file_location('scene_bias_tool', TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rows(method, tests):
    return [dict(method=method, seed=s, epochs=3, n_train=160, n_test=1024, test=t, test_dp=t,
                 val=80.0, pair=50.0, static=25.0, scene=70.0, seconds=1.0)
            for s, t in enumerate(tests)]


def test_verdict_follows_the_paired_interval():
    tool = _tool()
    moco = [40.0, 50.0, 45.0]
    rows = _rows('moco', moco) + _rows('dsm', [m + d for m, d in zip(moco, (1, 2, 3))]) + \
        _rows('tbe', [m + d for m, d in zip(moco, (5, 6, 7))]) + \
        _rows('be', [m - d for m, d in zip(moco, (5, 6, 7))])
    text = tool.format_report(rows)
    # dsm - moco = 1, 2, 3: mean 2, sample std 1, t(0.975, 2) = 4.303 -> [-0.48, +4.48]
    assert 'test +2.0 +- 1.0 [-0.5, +4.5]' in text
    assert 'dsm: not distinguishable from moco' in text
    assert 'tbe: better than moco' in text and 'be: worse than moco' in text
    # the moco row: mean 45, sample std 5 (ddof 1)
    assert '45.0 +- 5.0' in text


def test_disturbance_is_also_paired_with_the_intra_negative_ablation():
    tool = _tool()
    intra = [50.0, 60.0, 55.0]
    rows = _rows('moco', [40.0, 41.0, 42.0]) + _rows('moco_intra', intra) + \
        _rows('dsm', [m + d for m, d in zip(intra, (-1, 1, 3))])
    text = tool.format_report(rows).split('vs moco_intra')[1]
    # dsm - moco_intra = -1, 1, 3: mean 1, sample std 2, 4.303 * 2 / sqrt(3) = 4.97
    assert 'dsm        test +1.0 +- 2.0 [-4.0, +6.0]' in text and '(n = 3)' in text


def test_rows_of_later_runs_merge_per_method(tmp_path):
    tool = _tool()
    path = tmp_path / 'rows.json'
    tool._merge_rows(path, _rows('moco', [40.0]))
    tool._merge_rows(path, _rows('dsm', [42.0]))
    tool._merge_rows(path, _rows('moco', [41.0]))  # a rerun replaces its own row only
    rows = json.loads(path.read_text())
    assert sorted((r['method'], r['test']) for r in rows) == [('dsm', 42.0), ('moco', 41.0)]


def test_unknown_method_is_rejected():
    with pytest.raises(SystemExit):
        _tool().main(['--methods', 'simclr', '--seeds', '0'])
