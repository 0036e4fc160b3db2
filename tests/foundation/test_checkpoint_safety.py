"""torch >= 2.6 checkpoint loading: full mmengine/torchreid files load, code-running pickles do not."""
import io
import os
import pickle

import numpy as np
import pytest
import torch

import mm_ext  # noqa: F401
from mm_ext._compat.checkpoint import safe_load


def _full_mmengine_checkpoint(path):
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint
    hub = MessageHub.get_instance('ckpt_safety_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/lr', np.float64(0.1))
    hub.update_info('iter', 7)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    ckpt = {
        'meta': {'epoch': 1, 'iter': 7, 'seed': np.int64(3), 'hist': np.arange(3.0),
                 'acc': np.float32(0.75), 'dtype': np.dtype('int32')},
        'state_dict': model.state_dict(),
        'optimizer': opt.state_dict(),
        'message_hub': hub.state_dict(),
    }
    save_checkpoint(ckpt, str(path))
    return model


def test_plain_torch_load_still_refuses_it(tmp_path):
    """Nothing was switched off globally."""
    f = tmp_path / 'full.pth'
    _full_mmengine_checkpoint(f)
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ
    with pytest.raises(pickle.UnpicklingError):
        torch.load(f)


def test_full_mmengine_checkpoint_loads_through_mmengine(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    f = tmp_path / 'full.pth'
    model = _full_mmengine_checkpoint(f)
    ck = _load_checkpoint(str(f), map_location='cpu')
    assert ck['meta']['iter'] == 7 and ck['meta']['acc'] == np.float32(0.75)
    assert torch.equal(ck['state_dict']['weight'], model.state_dict()['weight'])
    hub_state = ck['message_hub']
    assert hub_state['log_scalars']['train/loss'].current() == 0.5
    assert 'momentum_buffer' in ck['optimizer']['state'][0]


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_pickle_that_runs_code_is_refused(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    marker = tmp_path / 'pwned'
    f = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _RunsCode(marker)}, f)
    with pytest.raises(pickle.UnpicklingError, match='refused'):
        _load_checkpoint(str(f), map_location='cpu')
    with pytest.raises(pickle.UnpicklingError):
        safe_load(f)
    assert not marker.exists()


def test_getattr_is_limited_to_allow_listed_methods():
    from mmengine.logging.history_buffer import HistoryBuffer
    # getattr(HistoryBuffer, '__init__') built by hand at the pickle level
    payload = (b'\x80\x02cbuiltins\ngetattr\ncmmengine.logging.history_buffer\nHistoryBuffer\n'
               b'X\x08\x00\x00\x00__init__\x86R.')
    buf = io.BytesIO()
    torch.save({'x': 1}, buf)  # a valid zip container to patch the pickle into
    import zipfile
    buf.seek(0)
    zin = zipfile.ZipFile(buf)
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w') as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith('data.pkl'):
                data = payload
            zout.writestr(item, data)
    out.seek(0)
    with pytest.raises(pickle.UnpicklingError, match='getattr'):
        safe_load(out)
    assert HistoryBuffer.__init__  # untouched


def test_torchreid_checkpoint_with_numpy_rank1_resumes(tmp_path):
    from torchreid.reid.utils import load_checkpoint, resume_from_checkpoint, save_checkpoint
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    save_checkpoint({'state_dict': model.state_dict(), 'epoch': 5, 'rank1': np.float32(0.42),
                     'optimizer': opt.state_dict()}, str(tmp_path), is_best=False)
    f = tmp_path / 'model.pth.tar-5'
    ck = load_checkpoint(str(f))
    assert ck['epoch'] == 5 and abs(float(ck['rank1']) - 0.42) < 1e-6
    fresh = torch.nn.Linear(4, 3)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    start = resume_from_checkpoint(str(f), fresh, fresh_opt)
    assert start == 5
    assert torch.equal(fresh.weight, model.weight)
