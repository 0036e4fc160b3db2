"""digits-cifar: the quick PFF config trains through tools/train.py and exports through tools/pff_prune.py."""
import importlib.util
import json

import pytest
import torch

pytest.importorskip('mmpretrain')

CFG = 'configs/mmpretrain/pff/pff_vgg-w8_1xb64-20e_digits-cifar.py'


def _tool(repo_root, rel):
    spec = importlib.util.spec_from_file_location(rel.replace('/', '_')[:-3], repo_root / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_pff_digits_train_prune_export(repo_root, dataset, tmp_path, capsys, monkeypatch):
    root = dataset('digits-cifar')
    monkeypatch.chdir(repo_root)
    data = [f'{k}.dataset.data_root={root}' for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    train = _tool(repo_root, 'tools/train.py')
    assert train.main([CFG, '--work-dir', str(tmp_path), '--cfg-options', 'train_cfg.max_epochs=1',
                       'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
                       'custom_hooks.0.log_interval_epochs=1', *data]) == 0
    ckpt = tmp_path / 'epoch_1.pth'
    assert ckpt.is_file()
    capsys.readouterr()
    # export at the median |I|: about half of the stripes go, whatever one epoch learned; filters that
    # die only now keep a non-zero BN output and must be kept, so the export must stay exact anyway
    fs = [v.abs().flatten() for k, v in torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict'].items()
          if k.endswith('filter_skeleton')]
    delta = float(torch.cat(fs).median())
    prune = _tool(repo_root, 'tools/pff_prune.py')
    out = tmp_path / 'pruned.pth'
    assert prune.main([CFG, str(ckpt), '--out', str(out), '--threshold', str(delta), '--speed-batches', '2',
                       '--cfg-options', *data]) == 0
    text = capsys.readouterr().out
    summary = json.loads(text.strip().splitlines()[-1].split('PFF_SUMMARY ', 1)[1])
    assert out.is_file() and (tmp_path / 'pruned_stripes.png').stat().st_size > 1000
    assert summary['prediction_agreement'] == 1.0
    assert summary['reload_max_abs_diff'] < 1e-5
    assert summary['stripes_kept'] < 0.6 * summary['stripes_total']
    assert summary['flops_after'] < summary['flops_before']
    logs = '\n'.join(p.read_text() for p in tmp_path.rglob('*.log'))
    assert 'PFF epoch 1: stripes' in logs
