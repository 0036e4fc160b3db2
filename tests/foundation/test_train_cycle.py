"""tools/train.py -> checkpoint -> --resume -> tools/test.py on digits-cifar (CPU, seconds)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CFG = 'configs/mmpretrain/digits/resnet18-w16_1xb64-6e_digits-cifar.py'
SMALL = ['train_dataloader.dataset.indices=192', 'val_dataloader.dataset.indices=100',
         'train_dataloader.batch_size=32', 'param_scheduler=[]', 'train_cfg.val_interval=1']


def _tool(*args, timeout=600, env=None):
    r = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                       timeout=timeout, env=env)
    assert r.returncode == 0, (r.stdout[-2000:] + r.stderr[-4000:])
    return r.stdout + r.stderr


@pytest.mark.slow
def test_train_checkpoint_resume_test_cycle(dataset, tmp_path):
    root = dataset('digits-cifar')
    data = [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}']
    wd = tmp_path / 'wd'
    _tool('tools/train.py', CFG, '--work-dir', str(wd), '--cfg-options', *SMALL, *data,
          'train_cfg.max_epochs=1')
    assert (wd / 'epoch_1.pth').is_file()
    # resume (latest checkpoint in work_dir) and train one more epoch
    out = _tool('tools/train.py', CFG, '--work-dir', str(wd), '--resume', '--cfg-options', *SMALL,
                *data, 'train_cfg.max_epochs=2')
    assert re.search(r'resumed epoch: 1, iter: 6', out), out[-3000:]
    assert (wd / 'epoch_2.pth').is_file()
    # resume from an explicit file: nothing left to train, the run still loads everything
    _tool('tools/train.py', CFG, '--work-dir', str(wd), '--resume', str(wd / 'epoch_2.pth'),
          '--cfg-options', *SMALL, *data, 'train_cfg.max_epochs=2')
    out = _tool('tools/test.py', CFG, str(wd / 'epoch_2.pth'), '--work-dir', str(wd),
                '--cfg-options', *data, 'test_dataloader.dataset.indices=100')
    metrics = json.loads(out.rsplit('metrics: ', 1)[1].splitlines()[0])
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0


@pytest.mark.slow
def test_ddp_two_cpu_ranks_train_in_lockstep(dataset, tmp_path):
    root = dataset('digits-cifar')
    wd = tmp_path / 'ddp'
    env = dict(os.environ, PORT='29617', PYTHON=sys.executable)
    r = subprocess.run(
        ['bash', 'tools/dist_train.sh', CFG, '2', '--work-dir', str(wd), '--cfg-options',
         f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
         'train_dataloader.dataset.indices=64', 'train_dataloader.batch_size=16',
         'train_cfg.max_epochs=1', 'train_cfg.val_interval=10', 'param_scheduler=[]',
         'default_hooks.logger.interval=1'],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert 'Distributed training: True' in out, out[-3000:]
    # 64 images / (2 ranks x 16 per rank) = 2 iterations; a single process would log [1][x/4]
    assert re.search(r'Epoch\(train\) \[1\]\[2/2\]', out), out[-3000:]
    assert not re.search(r'\[1\]\[\d/4\]', out)
    assert (wd / 'epoch_1.pth').is_file()
