"""Exact resume: kill -9 in the middle of an epoch, ``--resume auto``, bit-identical final weights;
truncated checkpoints are skipped with a warning; frozen helper models without an optimiser."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import torchreid  # noqa: E402  (a missing host fails, CI is strict)

import reid_ext  # noqa: E402,F401
from reid_ext import checkpoint as ckpt_io  # noqa: E402
from reid_ext.datagen.synth_ped import generate  # noqa: E402

SMALL = dict(num_train_ids=12, num_test_ids=6, cams_per_id=3, images_per_cam=2, num_distractors=4,
             height=32, width=16)
ENGINES = {'softmax': ('bnneck_tiny', 'configs/reid/va_reid/baseline_tiny_synth-ped_quick.yaml'),
           'va_reid': ('va_reid_tiny', 'configs/reid/va_reid/va_reid_tiny_synth-ped_quick.yaml')}


@pytest.fixture(scope='module')
def small_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    generate(root / 'synth-ped', seed=5, **SMALL)
    return root


def _cmd(repo_root, engine, root, save_dir, *extra):
    model, cfg = ENGINES[engine]
    return [sys.executable, str(repo_root / 'tools' / 'reid_train.py'), '--config-file',
            str(repo_root / cfg), '--root', str(root), '--save-dir', str(save_dir), *extra,
            'model.name', model, 'data.height', '32', 'data.width', '16', 'data.workers', '0',
            'train.batch_size', '8', 'train.max_epoch', '5', 'train.checkpoint_iters', '2',
            'train.checkpoint_keep', '4', 'train.print_freq', '1000', 'test.batch_size', '16']


def _env(repo_root):
    return dict(os.environ, PYTHONPATH=str(repo_root), OMP_NUM_THREADS='1')


def _final_state(save_dir):
    return ckpt_io.load_file(ckpt_io.list_checkpoints(str(save_dir))[-1])


@pytest.mark.slow
@pytest.mark.parametrize('engine', ['softmax', 'va_reid'])
def test_kill_9_mid_epoch_then_resume_auto_gives_bit_identical_weights(engine, small_root, tmp_path,
                                                                        repo_root):
    ref = subprocess.run(_cmd(repo_root, engine, small_root, tmp_path / 'ref'), cwd=str(repo_root),
                         env=_env(repo_root), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]

    run_dir = tmp_path / 'killed'
    proc = subprocess.Popen(_cmd(repo_root, engine, small_root, run_dir), cwd=str(repo_root),
                            env=_env(repo_root), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline, target = time.time() + 240, None
    while time.time() < deadline and proc.poll() is None:
        names = [os.path.basename(p) for p in ckpt_io.list_checkpoints(str(run_dir))]
        # the 2nd in-epoch checkpoint of the 3rd epoch exists: kill while training goes on
        if 'ckpt_e0002_i0000004.pth' in names:
            os.kill(proc.pid, signal.SIGKILL)
            target = names
            break
        time.sleep(0.005)
    proc.wait()
    assert target is not None, 'training finished (or failed) before it could be killed'
    assert proc.returncode == -signal.SIGKILL
    done = ckpt_io.list_checkpoints(str(run_dir))
    assert not os.path.isfile(str(run_dir / 'model' / 'model.pth.tar-5'))  # really interrupted

    # damage the newest checkpoint as a half-copied file would be: resume must skip it
    newest = done[-1]
    with open(newest, 'r+b') as f:
        f.truncate(os.path.getsize(newest) // 2)
    res = subprocess.run(_cmd(repo_root, engine, small_root, run_dir, '--resume', 'auto'),
                         cwd=str(repo_root), env=_env(repo_root), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f'skipping checkpoint {newest}' in res.stderr
    # the previous checkpoint lies inside the epoch too: the run restarts mid-epoch
    assert done[-2].endswith('ckpt_e0002_i0000002.pth')
    assert f'Resumed from {done[-2]} (epoch 2, iteration 2)' in res.stdout

    a, b = _final_state(tmp_path / 'ref'), _final_state(run_dir)
    assert (a['epoch'], a['iter']) == (b['epoch'], b['iter']) == (5, 0)
    for name in a['models']:
        for k, v in a['models'][name].items():
            assert torch.equal(v, b['models'][name][k]), (name, k)
    assert str(a['optimizers']) == str(b['optimizers'])
    # the final evaluation is the same too
    line = [x for x in ref.stdout.splitlines() if x.startswith('synth_ped: mAP')]
    assert line and line[0] in res.stdout


def test_load_latest_skips_truncated_and_foreign_files(tmp_path):
    good = ckpt_io.checkpoint_path(str(tmp_path), 1, 0)
    ckpt_io.save_atomic({'models': {'model': {'w': torch.ones(3)}}}, good)
    foreign = ckpt_io.checkpoint_path(str(tmp_path), 2, 0)
    ckpt_io.save_atomic({'state_dict': {}}, foreign)  # torchreid-format, not a resume checkpoint
    bad = ckpt_io.checkpoint_path(str(tmp_path), 2, 5)
    ckpt_io.save_atomic({'models': {'model': {'w': torch.zeros(1000)}}}, bad)
    with open(bad, 'r+b') as f:
        f.truncate(100)
    assert ckpt_io.list_checkpoints(str(tmp_path)) == [good, foreign, bad]
    with pytest.warns(UserWarning) as rec:
        path, state = ckpt_io.load_latest(str(tmp_path))
    assert path == good and torch.equal(state['models']['model']['w'], torch.ones(3))
    assert [bad in str(w.message) for w in rec][:1] == [True]
    assert any(foreign in str(w.message) for w in rec)


@pytest.mark.slow
def test_frozen_helper_without_optimizer_is_saved_and_restored(small_root, tmp_path):
    from reid_ext.apis import build_datamanager, build_engine, build_model, build_optimizer
    from reid_ext.apis import build_scheduler
    from reid_ext.config import get_default_config
    cfg = get_default_config()
    cfg.merge_from_list(['model.name', 'bnneck_tiny', 'data.root', str(small_root),
                         'data.save_dir', str(tmp_path), 'data.height', 32, 'data.width', 16,
                         'data.workers', 0, 'train.batch_size', 8])
    dm = build_datamanager(cfg)

    def engine():
        model = build_model(cfg, dm.num_train_pids)
        opt = build_optimizer(cfg, model)
        eng = build_engine(cfg, dm, model, opt, build_scheduler(cfg, opt))
        helper = build_model(cfg, dm.num_train_pids).requires_grad_(False)
        assert eng.register_model('teacher', helper) is helper  # no optimiser, no scheduler
        return eng, helper

    eng, helper = engine()
    eng.save_dir = str(tmp_path)
    eng.save_model(0, 0.5, str(tmp_path))  # torchreid-format files, None optimiser allowed
    assert torch.load(tmp_path / 'teacher' / 'model.pth.tar-1', weights_only=True)['optimizer'] is None
    path = eng.save_checkpoint(1, 0)
    eng2, helper2 = engine()
    assert not torch.equal(helper2.classifier.weight, helper.classifier.weight)
    assert eng2.load_checkpoint(ckpt_io.load_file(path), path) == (1, 0)
    for k, v in helper.state_dict().items():
        assert torch.equal(v, helper2.state_dict()[k]), k
