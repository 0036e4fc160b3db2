"""Generator state capture/restore and the intact-checkpoint search used by ``--resume``."""
import io
import random
import warnings

import numpy as np
import pytest
import torch

from mm_ext._compat.checkpoint import safe_load
from mm_ext.engine.checkpoint_files import (CheckpointFallbackWarning, checkpoint_problem,
                                            find_resume_checkpoint, resume_candidates)
from mm_ext.engine.rng_state import capture_rng_state, preserved_rng_state, restore_rng_state


def _draw():
    return (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.randn(),
            torch.rand(3).tolist(), torch.randperm(10).tolist())


def test_restored_state_replays_the_same_draws_through_a_checkpoint_file():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    _draw()
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    np.random.randn()  # and numpy's
    state = capture_rng_state()
    expected = [_draw() for _ in range(3)]
    buf = io.BytesIO()
    torch.save({'resume_state': {'rng': [state]}}, buf)  # through torch.save + the weights-only loader
    buf.seek(0)
    loaded = safe_load(buf, map_location='cpu')['resume_state']['rng'][0]
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    restore_rng_state(loaded)
    assert [_draw() for _ in range(3)] == expected


def test_preserved_rng_state_leaves_the_stream_untouched():
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    ref = _draw()
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    with preserved_rng_state():
        _draw()
        _draw()
    assert _draw() == ref


def _ckpt(path, epoch):
    torch.save({'meta': {'epoch': epoch, 'iter': 4 * epoch}, 'state_dict': {'w': torch.full((64, 64), float(epoch))},
                'message_hub': {}}, path)


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    for e in (1, 2, 3):
        _ckpt(tmp_path / f'epoch_{e}.pth', e)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_3.pth'))
    assert resume_candidates(str(tmp_path)) == [str(tmp_path / f'epoch_{e}.pth') for e in (3, 2, 1)]
    assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_3.pth')
    data = (tmp_path / 'epoch_3.pth').read_bytes()
    (tmp_path / 'epoch_3.pth').write_bytes(data[:len(data) // 2])  # killed while writing
    with pytest.warns(CheckpointFallbackWarning, match=r'epoch_3\.pth: not a complete torch zip archive') as rec:
        chosen = find_resume_checkpoint(str(tmp_path))
    assert chosen == str(tmp_path / 'epoch_2.pth')
    assert f'Resuming from {tmp_path / "epoch_2.pth"}' in str(rec[0].message)


def test_corrupt_bytes_and_non_checkpoints_are_named(tmp_path):
    _ckpt(tmp_path / 'epoch_1.pth', 1)
    _ckpt(tmp_path / 'epoch_2.pth', 2)
    raw = bytearray((tmp_path / 'epoch_2.pth').read_bytes())
    i = raw.find(b'\x00\x00\x00@')  # inside the stored tensor (value 2.0 = 0x40000000)
    assert i > 0
    raw[i + 3] ^= 0xFF  # flip bits in the payload, the archive stays complete
    (tmp_path / 'epoch_2.pth').write_bytes(bytes(raw))
    assert 'CRC mismatch' in checkpoint_problem(str(tmp_path / 'epoch_2.pth'))
    torch.save({'just': 'weights'}, tmp_path / 'iter_9.pth')
    assert 'not an mmengine training checkpoint' in checkpoint_problem(str(tmp_path / 'iter_9.pth'))
    (tmp_path / 'epoch_5.pth').write_bytes(b'')
    assert checkpoint_problem(str(tmp_path / 'epoch_5.pth')) == 'file is empty (0 bytes)'
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_1.pth')
    msg = str(rec[0].message)
    for name in ('iter_9.pth', 'epoch_5.pth', 'epoch_2.pth'):
        assert name in msg


def test_no_usable_checkpoint_is_an_error_and_an_empty_dir_is_a_fresh_start(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) is None
    (tmp_path / 'epoch_1.pth').write_bytes(b'PK\x03\x04 not really')
    with pytest.raises(RuntimeError, match=r'no usable checkpoint.*epoch_1\.pth'):
        find_resume_checkpoint(str(tmp_path))
