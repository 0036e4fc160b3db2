import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def strict_ci() -> bool:
    """``CI=true`` (also 1/yes): a skip that is not a ``cuda`` test fails the run."""
    return os.environ.get('CI', '').strip().lower() in ('1', 'true', 'yes')


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs CUDA')
    for item in items:
        if 'cuda' in item.keywords:
            item.add_marker(skip)


_STRICT_HINT = ('strict CI (CI=true): only @pytest.mark.cuda tests may skip; a missing host or '
                'optional tool is a broken environment. Run `make setup` (tools/setup.sh), or '
                'unset CI to allow skips locally. Skip reason: ')


def _skip_reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, lineno, message)
        return f'{longrepr[2]} ({longrepr[0]}:{longrepr[1]})'
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A module-level ``pytest.importorskip``/``pytest.skip`` under CI=true is a collection error."""
    outcome = yield
    rep = outcome.get_result()
    if strict_ci() and rep.skipped:
        rep.outcome = 'failed'
        rep.longrepr = _STRICT_HINT + _skip_reason(rep.longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test that is not ``cuda``-marked fails under CI=true (xfail stays xfail)."""
    outcome = yield
    rep = outcome.get_result()
    if (strict_ci() and rep.skipped and not hasattr(rep, 'wasxfail')
            and item.get_closest_marker('cuda') is None):
        rep.outcome = 'failed'
        rep.longrepr = _STRICT_HINT + _skip_reason(rep.longrepr)


def pytest_report_header(config):
    if strict_ci():
        return 'mm-ext strict CI: CI=true, every skip except @pytest.mark.cuda fails'
    return None


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope='session')
def dataset():
    """``dataset(name, seed=0, **opts) -> Path``: an embedded dataset under ``data/`` (made once)."""
    from mm_ext.datagen import make_dataset

    root = Path(os.environ.get('MMEXT_DATA', REPO / 'data'))

    def _get(name, seed=0, **opts):
        return make_dataset(name, root=root, seed=seed, **opts)

    return _get


@pytest.fixture
def spawn_gloo(tmp_path):
    """``spawn_gloo(worker, world=2)`` runs ``worker(rank, world, init_file, out_dir)`` in ``world``
    spawned processes (``init_file`` for ``init_method='file://...'``, ``out_dir`` = ``tmp_path``) and
    asserts that every rank wrote ``out_dir/ok<rank>``, which a worker does after all its checks.

    gloo can abort a worker at interpreter exit ("terminate called without an active exception")
    after its checks passed, so a non-zero exit counts only when an ok file is missing."""
    import torch.multiprocessing as mp

    def run(worker, world=2):
        try:
            mp.spawn(worker, args=(world, str(tmp_path / 'init'), str(tmp_path)), nprocs=world, join=True)
        except mp.ProcessExitedException:
            if not all((tmp_path / f'ok{r}').exists() for r in range(world)):
                raise
        assert all((tmp_path / f'ok{r}').exists() for r in range(world))

    return run
