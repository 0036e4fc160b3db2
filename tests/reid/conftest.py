import pytest
from small_ped import SMALL


@pytest.fixture(scope='session')
def small_root(tmp_path_factory):
    """``<root>/synth-ped`` generated once per session with ``SMALL`` and seed 5 (tests read it only)."""
    from reid_ext.datagen.synth_ped import generate
    root = tmp_path_factory.mktemp('small_ped')
    generate(root / 'synth-ped', seed=5, **SMALL)
    return root
