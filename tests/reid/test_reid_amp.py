"""Mixed precision for every reid_ext engine: bf16 autocast on CPU, fp16 + GradScaler (state in
the checkpoint), and the CUDA path."""
import pytest
import torch

import torchreid  # noqa: E402  (a missing host fails, CI is strict)

import reid_ext  # noqa: E402,F401
from reid_ext import checkpoint as ckpt_io  # noqa: E402
from reid_ext.apis import (build_datamanager, build_engine, build_model, build_optimizer,  # noqa: E402
                           build_scheduler, build_train_loader, run)
from reid_ext.config import get_default_config  # noqa: E402


def _cfg(root, save_dir, engine='softmax', **extra):
    cfg = get_default_config()
    cfg.merge_from_list([
        'model.name', 'va_reid_tiny' if engine == 'va_reid' else 'bnneck_tiny', 'engine.name', engine,
        'data.root', str(root), 'data.save_dir', str(save_dir), 'data.height', 32, 'data.width', 16,
        'data.workers', 0, 'train.batch_size', 8, 'train.max_epoch', 1, 'test.batch_size', 16,
        'loss.name', 'triplet', 'train.amp', True])
    for k, v in extra.items():
        cfg.merge_from_list([k, v])
    return cfg


def _engine(cfg):
    dm = build_datamanager(cfg)
    dm.train_loader = build_train_loader(cfg, dm.train_loader.dataset, cfg.train.seed)
    model = build_model(cfg, dm.num_train_pids)
    opt = build_optimizer(cfg, model)
    return build_engine(cfg, dm, model, opt, build_scheduler(cfg, opt)), model


@pytest.mark.parametrize('engine_name', ['softmax', 'va_reid'])
def test_bf16_amp_step_on_cpu(small_root, tmp_path, engine_name):
    engine, model = _engine(_cfg(small_root, tmp_path, engine_name))
    assert engine.amp and engine.amp_dtype == torch.bfloat16 and not engine.scaler.is_enabled()
    dtypes = []
    model.backbone.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    engine.train_loader.batch_sampler.set_epoch(0)
    summary = engine.forward_backward(next(iter(engine.train_loader)))
    assert dtypes == [torch.bfloat16]  # the backbone ran in bfloat16
    assert all(torch.isfinite(torch.tensor(v)) for v in summary.values())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any('backbone' in k and 'weight' in k for k in changed)


def test_fp16_grad_scaler_state_goes_into_the_checkpoint(small_root, tmp_path):
    cfg = _cfg(small_root, tmp_path, **{'train.amp_dtype': 'float16'})
    engine, model = _engine(cfg)
    assert engine.scaler.is_enabled()
    engine.save_dir = str(tmp_path)
    model.train()
    engine.train_loader.batch_sampler.set_epoch(0)
    engine.forward_backward(next(iter(engine.train_loader)))
    engine.scaler.update(new_scale=1234.0)
    path = engine.save_checkpoint(1, 0)
    state = ckpt_io.load_file(path)
    assert state['scaler']['scale'] == 1234.0
    engine2, _ = _engine(cfg)
    assert engine2.scaler.get_scale() != 1234.0
    engine2.load_checkpoint(state, path)
    assert engine2.scaler.get_scale() == 1234.0


@pytest.mark.cuda
@pytest.mark.slow
def test_fp16_amp_on_cuda_learns(small_root, tmp_path):
    untrained = run(_cfg(small_root, tmp_path / 'untrained', **{'use_gpu': True,
                                                                'test.evaluate': True}))
    engine = run(_cfg(small_root, tmp_path / 'trained', **{'use_gpu': True, 'train.max_epoch': 6,
                                                            'train.lr': 0.003}))
    assert engine.amp_dtype == torch.float16 and engine.scaler.is_enabled()
    state = ckpt_io.load_file(ckpt_io.list_checkpoints(str(tmp_path / 'trained'))[-1])
    assert state['scaler']['scale'] == engine.scaler.get_scale()
    assert engine.history[-1]['loss_x'] < engine.history[0]['loss_x']
    assert engine.results['synth_ped']['mAP'] > untrained.results['synth_ped']['mAP']
