import argparse

import torch
from mmengine.config import Config

from mm_ext.engine import prepare_cfg


def test_amp_on_cpu_switches_to_bfloat16_autocast(tmp_path):
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1), loss_scale='dynamic')))
    args = argparse.Namespace(launcher='none', cfg_options=None, work_dir=str(tmp_path),
                              config='x.py', amp=True, resume=None)
    cfg = prepare_cfg(cfg, args)
    if torch.cuda.is_available():
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        return
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper' and 'loss_scale' not in cfg.optim_wrapper
    from mmengine.optim import build_optim_wrapper
    model = torch.nn.Linear(4, 2)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    with wrapper.optim_context(model):
        y = model(torch.randn(3, 4))
    assert y.dtype == torch.bfloat16
    before = model.weight.detach().clone()
    wrapper.update_params(y.float().sum())
    assert model.weight.dtype == torch.float32 and not torch.equal(before, model.weight)
