"""reid_ext on torchreid: idempotent registration, one engine epoch, checkpoint resume."""
import importlib

import pytest
import torch

import torchreid  # noqa: E402  (a missing host fails, CI is strict)

import reid_ext  # noqa: E402
from reid_ext import _register  # noqa: E402
from reid_ext.apis import find_last_checkpoint, run  # noqa: E402
from reid_ext.config import get_default_config, load_config  # noqa: E402
from reid_ext.registry import ENGINES  # noqa: E402
from reid_ext.datagen.synth_ped import generate  # noqa: E402

from small_ped import SMALL  # tests/reid/small_ped.py


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
def learn_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('learn')
    generate(root / 'synth-ped', seed=5, **dict(SMALL, num_train_ids=16, num_test_ids=12))
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


def _total_loss(summary):
    return sum(v for k, v in summary.items() if k.startswith('loss'))


def _assert_learns(engine_name, root, tmp_path, **more):
    """Training lowers the loss and lifts mAP above the untrained network (same seed)."""
    extra = {'train.max_epoch': 8, 'train.lr': 0.003, 'train.stepsize': [100],
             'train.batch_size': 16, 'loss.name': 'triplet', **more}
    untrained = run(_cfg(root, tmp_path / 'untrained', engine_name, **extra,
                         **{'test.evaluate': True}))
    engine = run(_cfg(root, tmp_path / 'trained', engine_name, **extra))
    hist = engine.history
    assert len(hist) == 8
    assert _total_loss(hist[-1]) < 0.7 * _total_loss(hist[0]), hist
    before, after = (untrained.results['synth_ped']['mAP'], engine.results['synth_ped']['mAP'])
    assert after > before + 0.05, (before, after)
    return engine


@pytest.mark.slow
@pytest.mark.parametrize('engine_name', ['softmax', 'va_reid'])
def test_engine_learns(engine_name, learn_root, tmp_path):
    _assert_learns(engine_name, learn_root, tmp_path)


@pytest.mark.slow
def test_va_reid_engine_epoch_checkpoint_and_resume(small_root, tmp_path):
    run(_cfg(small_root, tmp_path))
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


def test_every_reid_config_merges_into_the_defaults(repo_root):
    files = sorted((repo_root / 'configs' / 'reid').rglob('*.yaml'))
    assert files
    factory = getattr(torchreid.models, '__model_factory')
    for f in files:
        cfg = load_config(str(f))  # yacs raises on unknown keys; custom_imports imported first
        assert cfg.model.name in factory, f
        assert cfg.engine.name in ENGINES, f


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
@pytest.mark.parametrize('engine_name', ['softmax', 'va_reid'])
def test_engine_learns_on_cuda(engine_name, learn_root, tmp_path):
    engine = _assert_learns(engine_name, learn_root, tmp_path, **{'use_gpu': True})
    assert next(engine.model.parameters()).is_cuda
