import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs CUDA')
    for item in items:
        if 'cuda' in item.keywords:
            item.add_marker(skip)


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
