"""Kill -9 mid-training, resume, compare with an uninterrupted run (used by test_exact_resume.py).

Also runnable to print the comparison with and without the hook::

    python tests/foundation/resume_check.py digits
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
UNTIL = Path(__file__).resolve().parent / '_train_until.py'


def _env():
    return dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONHASHSEED='0')


def _train(cfg, wd, opts, extra=(), timeout=600):
    cmd = [sys.executable, 'tools/train.py', cfg, '--work-dir', str(wd), *extra, '--cfg-options', *opts]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=_env())
    out = r.stdout + r.stderr
    assert r.returncode == 0, f'{" ".join(cmd)}\n{out[-5000:]}'
    return out


def _train_and_kill(cfg, wd, opts, stop_iter, extra=(), timeout=600):
    marker = Path(wd).parent / f'{Path(wd).name}.stopped'
    cmd = [sys.executable, str(UNTIL), str(stop_iter), str(marker), 'tools/train.py', cfg,
           '--work-dir', str(wd), *extra, '--cfg-options', *opts]
    log = open(Path(wd).parent / f'{Path(wd).name}.killed.log', 'w+')
    p = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=_env())
    t0 = time.time()
    while not marker.exists():
        if p.poll() is not None or time.time() - t0 > timeout:
            p.kill()
            log.seek(0)
            raise AssertionError(f'run ended/hung before iteration {stop_iter}:\n{log.read()[-5000:]}')
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    assert p.wait(timeout=60) == -signal.SIGKILL
    log.seek(0)
    return log.read()


def state_dict(path):
    from mm_ext._compat.checkpoint import safe_load
    return safe_load(str(path), map_location='cpu')['state_dict']


def largest_difference(a, b):
    """(max |a - b| over all entries, key); keys and shapes must match."""
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    worst, key = 0.0, None
    for k in a:
        x, y = a[k], b[k]
        assert x.shape == y.shape and x.dtype == y.dtype, k
        d = float((x.double() - y.double()).abs().max()) if x.numel() else 0.0
        if key is None or d > worst:
            worst, key = d, k
    return worst, key


def kill_and_resume(tmp, cfg, opts, stop_iter, final, resume=('--resume',), exact=True, corrupt_newer=None):
    """Uninterrupted run vs the same run killed (SIGKILL) before ``stop_iter`` and resumed.

    Args:
        final (str): checkpoint file both runs end with (``epoch_3.pth``, ``iter_6.pth``).
        resume (tuple): ``('--resume',)`` (auto) or ``('--resume', NAME)``, NAME relative to the
            killed run's work dir.
        exact (bool): False runs all three with ``--no-exact-resume`` (mmengine alone).
        corrupt_newer (str): after the kill, write a truncated checkpoint with this name and
            point ``last_checkpoint`` at it (a kill while saving); auto-resume must skip it.

    Returns:
        (bool, float, str, str): bit-identical, largest difference, its key, resumed-run log.
    """
    tmp = Path(tmp)
    extra = () if exact else ('--no-exact-resume',)
    ref_wd, wd = tmp / 'uninterrupted', tmp / 'interrupted'
    _train(cfg, ref_wd, opts, extra)
    _train_and_kill(cfg, wd, opts, stop_iter, extra)
    assert not (wd / final).exists(), 'the kill came too late'
    if corrupt_newer:
        good = (wd / 'last_checkpoint').read_text().strip()
        data = Path(good).read_bytes()
        (wd / corrupt_newer).write_bytes(data[: len(data) * 2 // 3])
        (wd / 'last_checkpoint').write_text(str(wd / corrupt_newer))
    args = list(resume)
    if len(args) == 2:
        args[1] = str(wd / args[1])
    out = _train(cfg, wd, opts, (*extra, *args))
    a, b = state_dict(ref_wd / final), state_dict(wd / final)
    same = all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()
    worst, key = largest_difference(a, b)
    return same, worst, key, out


# ---------------------------------------------------------------- the four configurations
def digits_case(root):
    cfg = 'configs/mmpretrain/digits/resnet18-w16_1xb64-6e_digits-cifar.py'
    opts = [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            'train_dataloader.dataset.indices=96', 'train_dataloader.batch_size=32',
            'val_dataloader.dataset.indices=50', 'train_cfg.max_epochs=3', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=3', 'default_hooks.logger.interval=1',
            'randomness.seed=0', 'randomness.deterministic=True']
    return cfg, opts, 7, 'epoch_3.pth'  # 3 iterations/epoch: killed after 1 iteration of epoch 3


def pff_case(root):
    cfg = 'configs/mmpretrain/pff/pff_vgg-w8_1xb64-20e_digits-cifar.py'
    opts = [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            'train_dataloader.dataset.indices=96', 'train_dataloader.batch_size=32',
            'val_dataloader.dataset.indices=50', 'train_cfg.max_epochs=3', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=3',
            'custom_hooks.0.log_interval_epochs=1', 'randomness.seed=0', 'randomness.deterministic=True']
    return cfg, opts, 7, 'epoch_3.pth'


def moco_case(root):
    cfg = 'configs/mmaction/scene_bias/moco_r3d-tiny_1xb8-8x1-20e_scene-bias-video.py'
    opts = [f'train_dataloader.dataset.ann_file={root}/train_list_videos.txt',
            f'train_dataloader.dataset.data_prefix.video={root}/videos',
            'train_dataloader.dataset.indices=16', 'train_dataloader.batch_size=4', 'train_cfg.max_epochs=3',
            'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=3',
            'default_hooks.logger.interval=1', 'model.queue_len=8',
            'randomness.seed=0', 'randomness.deterministic=True']
    return cfg, opts, 9, 'epoch_3.pth'  # 4 iterations/epoch


def noh_case(root):
    cfg = 'configs/mmdet/noh/noh-nms_faster-rcnn_r18-w16_fpn_1xb4-400i_synth-crowd.py'
    opts = [f'train_dataloader.dataset.data_root={root}/', 'train_dataloader.batch_size=2',
            'train_cfg.max_iters=6', 'train_cfg.val_interval=6', 'default_hooks.checkpoint.interval=2',
            'default_hooks.checkpoint.max_keep_ckpts=3', 'default_hooks.logger.interval=1',
            'randomness.seed=0', 'randomness.deterministic=True']
    return cfg, opts, 5, 'iter_6.pth'  # iteration-based: killed after iter_4.pth


CASES = {'digits': ('digits-cifar', digits_case), 'pff': ('digits-cifar', pff_case),
         'moco': ('scene-bias-video', moco_case), 'noh': ('synth-crowd', noh_case)}


if __name__ == '__main__':
    import tempfile
    sys.path.insert(0, str(REPO))
    from mm_ext.datagen import make_dataset
    for name in sys.argv[1:] or list(CASES):
        data, case = CASES[name]
        root = make_dataset(data, root=Path(os.environ.get('MMEXT_DATA', REPO / 'data')))
        cfg, opts, stop, final = case(root)
        for exact in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.time()
                same, worst, key, _ = kill_and_resume(tmp, cfg, opts, stop, final, exact=exact)
            print(f'{name:7s} {"ExactResumeHook" if exact else "mmengine alone ":15s} bit-identical={same!s:5s} '
                  f'largest |uninterrupted - resumed| = {worst:.6g} ({key}) [{time.time() - t0:.0f}s]',
                  flush=True)
