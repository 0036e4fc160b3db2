"""digits-cifar: the quick PFF config trains through tools/train.py, exports through tools/pff_prune.py at
the config's fixed threshold, and the pruned model fine-tunes through tools/train.py."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip('mmpretrain')

CFG = 'configs/mmpretrain/pff/pff_vgg-w8_1xb64-20e_digits-cifar.py'
DELTA = 0.05  # the config's PFFHook threshold, fixed in advance


def _tool(repo_root, rel):
    spec = importlib.util.spec_from_file_location(rel.replace('/', '_')[:-3], repo_root / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _skeletons(path):
    sd = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
    return {k: v for k, v in sd.items() if k.endswith('filter_skeleton')}


@pytest.mark.slow
def test_pff_digits_train_prune_export_finetune(repo_root, dataset, tmp_path, capsys, monkeypatch):
    root = dataset('digits-cifar')
    monkeypatch.chdir(repo_root)
    data = [f'{k}.dataset.data_root={root}' for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    train = _tool(repo_root, 'tools/train.py')
    work = tmp_path / 'train'
    assert train.main([CFG, '--work-dir', str(work), '--cfg-options', 'train_cfg.val_interval=20',
                       'default_hooks.checkpoint.interval=20', *data]) == 0
    ckpt = work / 'epoch_20.pth'
    fs = torch.cat([v.abs().flatten() for v in _skeletons(ckpt).values()])
    # training sparsified the skeleton: at initialisation every |I| = 1 > delta
    assert float((fs <= DELTA).float().mean()) > 0.2
    capsys.readouterr()
    prune = _tool(repo_root, 'tools/pff_prune.py')
    out = tmp_path / 'pruned.pth'
    assert prune.main([CFG, str(ckpt), '--out', str(out), '--speed-batches', '2', '--cfg-options', *data]) == 0
    text = capsys.readouterr().out
    summary = json.loads(text.strip().splitlines()[-1].split('PFF_SUMMARY ', 1)[1])
    assert summary['threshold'] == DELTA
    assert out.is_file() and (tmp_path / 'pruned_stripes.png').stat().st_size > 1000
    assert summary['prediction_agreement'] == 1.0 and summary['reload_max_abs_diff'] < 1e-5
    assert summary['plain_max_abs_logit_diff'] < 1e-3
    assert summary['stripes_kept'] == int((fs > DELTA).sum())
    assert summary['flops_after'] < summary['flops_before']
    for suffix in ('_arch.pth', '_finetune.py', '_plain.py', '_plain.pth', '_plain_backbone.pt'):
        assert (tmp_path / f'pruned{suffix}').is_file(), suffix
    logs = '\n'.join(p.read_text() for p in work.rglob('*.log'))
    assert 'PFF epoch 10: stripes' in logs

    # fine-tune the pruned model: built from the arch record at construction, weights from the export
    ft = tmp_path / 'ft'
    assert train.main([str(tmp_path / 'pruned_finetune.py'), '--work-dir', str(ft), '--cfg-options',
                       'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
                       *data]) == 0
    before = torch.load(out, map_location='cpu', weights_only=False)['state_dict']
    after = torch.load(ft / 'epoch_1.pth', map_location='cpu', weights_only=False)['state_dict']
    stripe_keys = [k for k in before if k.endswith('stripe_weight')]
    assert stripe_keys and all(after[k].shape == before[k].shape for k in stripe_keys)
    assert all(not torch.equal(after[k], before[k]) for k in stripe_keys)

    # and under DDP (2 gloo ranks through tools/dist_train.sh): the optimiser and DDP hold the pruned parameters
    ddp = tmp_path / 'ddp'
    env = dict(os.environ, PORT='29631', PYTHON=sys.executable)
    r = subprocess.run(['bash', 'tools/dist_train.sh', str(tmp_path / 'pruned_finetune.py'), '2', '--work-dir', str(ddp),
                        '--cfg-options', *data, 'train_dataloader.dataset.indices=64', 'train_dataloader.batch_size=16',
                        'train_cfg.max_epochs=1', 'train_cfg.val_interval=10', 'param_scheduler=[]',
                        'default_hooks.checkpoint.interval=1'],
                       cwd=repo_root, capture_output=True, text=True, timeout=600, env=env)
    out_text = r.stdout + r.stderr
    assert r.returncode == 0, out_text[-4000:]
    assert 'Distributed training: True' in out_text
    after_ddp = torch.load(ddp / 'epoch_1.pth', map_location='cpu', weights_only=False)['state_dict']
    assert all(not torch.equal(after_ddp[k], before[k]) for k in stripe_keys)
