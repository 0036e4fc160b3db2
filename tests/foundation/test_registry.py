import importlib
import sys
import types

import pytest
from mmengine.registry import Registry

from mm_ext._registry import register


def test_register_is_idempotent_under_reload(tmp_path, monkeypatch):
    reg = Registry('probe_models')
    mod = tmp_path / 'mmext_probe_mod.py'
    mod.write_text('from mm_ext._registry import register\n'
                   'import builtins\n'
                   'REG = builtins._mmext_probe_reg\n'
                   '@register(REG)\nclass ProbeHead:\n    pass\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    import builtins
    builtins._mmext_probe_reg = reg
    try:
        m = importlib.import_module('mmext_probe_mod')
        first = reg.get('ProbeHead')
        m = importlib.reload(m)  # a new class object with the same qualified name
        assert reg.get('ProbeHead') is m.ProbeHead
        assert first is not m.ProbeHead
        register(reg)(m.ProbeHead)  # same object again: no error
    finally:
        del builtins._mmext_probe_reg
        sys.modules.pop('mmext_probe_mod', None)


def test_register_refuses_a_different_class_under_a_taken_name():
    reg = Registry('probe_models2')

    @register(reg)
    class Head:  # noqa: F811
        pass

    other = types.new_class('Head')
    other.__module__ = 'somewhere.else'
    with pytest.raises(KeyError, match='somewhere.else'):
        register(reg)(other)


def test_host_registries_hold_mm_ext_components():
    import mm_ext.mmpretrain  # noqa: F401
    from mmpretrain.registry import DATASETS
    assert DATASETS.get('GeneratedCIFAR10').__module__.startswith('mm_ext.')
