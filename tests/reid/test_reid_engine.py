"""reid_ext on torchreid: idempotent registration, one engine epoch, checkpoint resume."""
import importlib

import pytest
import torch

torchreid = pytest.importorskip('torchreid')

import reid_ext  # noqa: E402
from reid_ext import _register  # noqa: E402
from reid_ext.apis import find_last_checkpoint, run  # noqa: E402
from reid_ext.config import get_default_config  # noqa: E402
from reid_ext.datagen.synth_ped import generate  # noqa: E402

SMALL = dict(num_train_ids=8, num_test_ids=6, cams_per_id=3, images_per_cam=2, num_distractors=4,
             height=32, width=16)


def test_registration_is_idempotent_and_builds_every_model():
    importlib.reload(_register)
    importlib.reload(reid_ext)
    assert reid_ext.register_all()
    factory = getattr(torchreid.models, '__model_factory')
    for name in _register.MODELS:
        assert name in factory
        model = torchreid.models.build_model(name, num_classes=4, pretrained=False).eval()
        if 'tiny' in name or 'resnet18' in name:  # forward only the light ones
            assert model(torch.randn(2, 3, 32, 16)).shape[0] == 2
    for name in _register.DATASETS:
        assert name in getattr(importlib.import_module('torchreid.reid.data.datasets'),
                               '__image_datasets')


def test_registration_refuses_a_different_object():
    with pytest.raises(KeyError, match='already registered'):
        _register.register_model('bnneck_tiny', lambda **kw: None)


@pytest.fixture(scope='module')
def small_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    generate(root / 'synth-ped', seed=5, **SMALL)
    return root


def _cfg(root, save_dir, engine='va_reid', **extra):
    cfg = get_default_config()
    cfg.merge_from_list([
        'model.name', 'va_reid_tiny' if engine == 'va_reid' else 'bnneck_tiny',
        'engine.name', engine, 'data.root', str(root), 'data.save_dir', str(save_dir),
        'data.height', 32, 'data.width', 16, 'data.workers', 0, 'train.batch_size', 16,
        'train.max_epoch', 1, 'train.warmup_epochs', 1, 'train.stepsize', [5],
        'test.batch_size', 64, 'test.normalize_feature', True, 'va_reid.scale', 8.0])
    for k, v in extra.items():
        cfg.merge_from_list([k, v])
    return cfg


@pytest.mark.slow
def test_va_reid_engine_epoch_checkpoint_and_resume(small_root, tmp_path):
    engine = run(_cfg(small_root, tmp_path))
    res = engine.results['synth_ped']
    assert 0.0 <= res['mAP'] <= 1.0 and isinstance(res['rank1'], float)
    ckpt = find_last_checkpoint(str(tmp_path))
    assert ckpt.endswith('model.pth.tar-1')
    state = torch.load(ckpt, weights_only=True)  # Python floats only: the strict loader accepts it
    assert state['epoch'] == 1 and type(state['rank1']) is float
    # resume for one more epoch: weights, optimizer and scheduler come back from the checkpoint
    engine2 = run(_cfg(small_root, tmp_path, **{'model.resume': 'auto', 'train.max_epoch': 2}))
    assert engine2.start_epoch == 1
    assert engine2.scheduler.last_epoch == 2
    assert find_last_checkpoint(str(tmp_path)).endswith('model.pth.tar-2')
    loaded = torchreid.utils.load_checkpoint(ckpt)
    model = torchreid.models.build_model('va_reid_tiny', num_classes=SMALL['num_train_ids'],
                                         pretrained=False)
    model.load_state_dict(loaded['state_dict'])


@pytest.mark.slow
def test_va_reid_engine_fallback_viewpoints_and_softmax_engine(small_root, tmp_path):
    from reid_ext.datasets.side_labels import SideLabels
    from reid_ext.engines import VAReIDEngine
    from reid_ext.apis import build_datamanager, build_model, build_optimizer, build_scheduler
    cfg = _cfg(small_root, tmp_path)
    dm = build_datamanager(cfg)
    model = build_model(cfg, dm.num_train_pids)
    opt = build_optimizer(cfg, model)
    names = [item[0] for item in dm.train_loader.dataset.train]
    half = {n.split('/')[-1]: 1 for n in names[::2]}  # only half the images have a viewpoint
    engine = VAReIDEngine(dm, model, opt, build_scheduler(cfg, opt),
                          side_labels={'viewpoint': SideLabels(half)}, scale=8.0, vaal=True)
    model.train()
    summary = engine.forward_backward(next(iter(dm.train_loader)))
    assert {'loss_id', 'loss_view', 'loss_reg', 'loss_t', 'loss_vp'} <= set(summary)
    assert all(torch.isfinite(torch.tensor(v)) for v in summary.values())
    base = run(_cfg(small_root, tmp_path / 'softmax', engine='softmax'))
    assert 'synth_ped' in base.results


def test_every_reid_config_merges_into_the_defaults(repo_root):
    files = sorted((repo_root / 'configs' / 'reid').rglob('*.yaml'))
    assert files
    factory = getattr(torchreid.models, '__model_factory')
    for f in files:
        cfg = get_default_config()
        cfg.merge_from_file(str(f))  # yacs raises on unknown keys
        assert cfg.model.name in factory, f
        assert cfg.engine.name in ('softmax', 'va_reid'), f


@pytest.mark.slow
def test_reid_train_cli_test_only_with_visrank(small_root, tmp_path, repo_root):
    import os
    import subprocess
    import sys
    engine = run(_cfg(small_root, tmp_path / 'train', engine='softmax'))
    ckpt = find_last_checkpoint(str(tmp_path / 'train'))
    out = tmp_path / 'test'
    cmd = [sys.executable, str(repo_root / 'tools' / 'reid_train.py'), '--config-file',
           str(repo_root / 'configs/reid/va_reid/baseline_tiny_synth-ped_quick.yaml'),
           '--root', str(small_root), '--save-dir', str(out), '--visrank',
           'model.load_weights', ckpt, 'data.height', '32', 'data.width', '16',
           'train.batch_size', '16']
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    proc = subprocess.run(cmd, cwd=str(repo_root), env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # test-only with the trained weights reproduces the training run's final test
    mAP = engine.results['synth_ped']['mAP']
    assert f'synth_ped: mAP {mAP:.4f}' in proc.stdout
    assert len(list((out / 'visrank_synth_ped').glob('*.jpg'))) == len(
        engine.datamanager.fetch_test_loaders('synth_ped')[0])


@pytest.mark.cuda
@pytest.mark.slow
def test_va_reid_engine_epoch_on_cuda(small_root, tmp_path):
    engine = run(_cfg(small_root, tmp_path, **{'use_gpu': True}))
    assert next(engine.model.parameters()).is_cuda
    assert 0.0 <= engine.results['synth_ped']['mAP'] <= 1.0
