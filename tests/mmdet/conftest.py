import pytest


@pytest.fixture(autouse=True)
def _mmdet_default_scope():
    """Build through mmdet's registries whatever scope an earlier test's Runner left current."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield
