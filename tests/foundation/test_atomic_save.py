"""mmengine's save_checkpoint (what Runner/CheckpointHook use) writes through a temp file + rename."""
import pytest
import torch

import mm_ext  # noqa: F401  installs the patch


def test_save_is_atomic_and_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    import mmengine.runner.checkpoint as ckpt
    import mmengine.runner.runner as runner_mod
    assert getattr(ckpt.save_checkpoint, '__mm_ext_atomic__', False)
    assert runner_mod.save_checkpoint is ckpt.save_checkpoint
    path = tmp_path / 'epoch_1.pth'
    ckpt.save_checkpoint({'meta': {'epoch': 1}, 'state_dict': {'w': torch.ones(3)}}, str(path))
    assert torch.load(path, weights_only=True)['state_dict']['w'].tolist() == [1.0, 1.0, 1.0]
    assert [p.name for p in tmp_path.iterdir()] == ['epoch_1.pth']

    real_save = torch.save

    def dies_half_way(obj, f, *a, **k):
        f.write(b'PK\x03\x04partial')
        raise KeyboardInterrupt('killed while writing')

    monkeypatch.setattr(torch, 'save', dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint({'meta': {'epoch': 2}, 'state_dict': {'w': torch.zeros(3)}}, str(path))
    monkeypatch.setattr(torch, 'save', real_save)
    assert torch.load(path, weights_only=True)['state_dict']['w'].tolist() == [1.0, 1.0, 1.0]
