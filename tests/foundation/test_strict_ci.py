"""Strict CI: under CI=true only ``cuda``-marked tests may skip (tests/conftest.py hooks).

The suite's real conftest is copied next to a tiny test file and pytest runs on it in a
subprocess, once with CI=true and once without.
"""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CASES = {
    'test_host_missing.py': """
        import pytest
        pytest.importorskip('mm_ext_no_such_host_xyz')

        def test_never_runs():
            pass
    """,
    'test_kinds.py': """
        import pytest

        def test_ok():
            pass

        def test_runtime_skip():
            pytest.skip('optional tool missing')

        @pytest.mark.skip(reason='decorated skip')
        def test_marked_skip():
            pass

        @pytest.mark.cuda
        def test_cuda_only():
            import torch
            if not torch.cuda.is_available():
                pytest.skip('no GPU here')

        @pytest.mark.xfail(reason='known', strict=True)
        def test_expected_failure():
            assert False
    """,
}


def _run(tmp_path, ci):
    (tmp_path / 'conftest.py').write_text((REPO / 'tests' / 'conftest.py').read_text())
    (tmp_path / 'pytest.ini').write_text('[pytest]\nmarkers =\n    cuda: needs CUDA\n    slow: slow\n')
    for name, src in CASES.items():
        (tmp_path / name).write_text(textwrap.dedent(src))
    env = {k: v for k, v in os.environ.items() if k != 'CI'}
    if ci is not None:
        env['CI'] = ci
    env['PYTHONPATH'] = os.pathsep.join([str(REPO), env.get('PYTHONPATH', '')])
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rA', '-p', 'no:cacheprovider',
                        '--continue-on-collection-errors', str(tmp_path)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    return r.returncode, r.stdout + r.stderr


def _counts(out):
    last = [ln for ln in out.splitlines() if re.search(r'\d+ (passed|failed|skipped)', ln)][-1]
    return {k: int(n) for n, k in re.findall(r'(\d+) (passed|failed|skipped|xfailed|errors?)', last)}


def test_without_ci_skips_are_skips(tmp_path):
    rc, out = _run(tmp_path, None)
    assert rc == 0, out
    c = _counts(out)
    assert c.get('failed', 0) == 0 and c.get('error', 0) + c.get('errors', 0) == 0, out
    # module skip + runtime skip + marked skip + cuda skip (without a GPU)
    import torch
    assert c['skipped'] == (4 if not torch.cuda.is_available() else 3), out
    assert c['xfailed'] == 1 and c['passed'] == 1, out


def test_ci_true_turns_non_cuda_skips_into_failures(tmp_path):
    rc, out = _run(tmp_path, 'true')
    assert rc != 0, out
    c = _counts(out)
    # the missing host is a collection error, a skip marker an error at set-up, pytest.skip a failure
    assert c.get('error', 0) + c.get('errors', 0) == 2, out
    assert c['failed'] == 1, out
    assert c['passed'] == 1 and c['xfailed'] == 1, out
    import torch
    assert c.get('skipped', 0) == (0 if torch.cuda.is_available() else 1), out  # only the cuda test
    assert 'strict CI (CI=true)' in out and 'mm_ext_no_such_host_xyz' in out, out
    assert 'optional tool missing' in out and 'decorated skip' in out, out
    assert re.search(r'ERROR test_host_missing.py', out), out
    assert re.search(r'FAILED test_kinds.py::test_runtime_skip', out), out
    assert re.search(r'ERROR test_kinds.py::test_marked_skip', out), out
