"""Every PFF config builds its model and hook, and the hook's channel tracing works on it."""
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmpretrain')

CONFIGS = sorted(p.name for p in (Path(__file__).resolve().parents[2] / 'configs/mmpretrain/pff').glob('pff_*.py'))


@pytest.mark.parametrize('name', CONFIGS)
def test_pff_config_builds_and_traces(name, repo_root):
    import mm_ext  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    from mm_ext.core.pruning import FilterSkeletonConv2d, trace_channel_groups

    cfg = Config.fromfile(str(repo_root / 'configs/mmpretrain/pff' / name))
    import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.default_scope)
    from mmpretrain.registry import HOOKS, MODELS
    model = MODELS.build(cfg.model)
    model.init_weights()
    fs = [m for m in model.modules() if isinstance(m, FilterSkeletonConv2d)]
    assert fs and all(torch.equal(m.filter_skeleton, torch.ones_like(m.filter_skeleton)) for m in fs)
    hook_cfg = [h for h in cfg.custom_hooks if h['type'] == 'PFFHook']
    assert len(hook_cfg) == 1
    hook = HOOKS.build(hook_cfg[0])
    size = 64 if hook.input_shape[-1] > 32 else 32
    groups = trace_channel_groups(model.tensor_path(), torch.randn(2, 3, size, size))
    assert any(g.removable for g in groups.values())
