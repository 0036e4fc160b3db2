"""Progress lines for demo steps: chatter stays in the log, the terminal gets a progress line."""
import sys
import textwrap

import pytest

from mm_ext.engine.progress import Heartbeat, ProgressLine, host_output_to, run_logged

CHILD = textwrap.dedent('''
    import json, os, sys, time
    path = os.environ['MMEXT_PROGRESS_FILE']  # what ProgressHook writes (write_status's format)
    for i in range(1, 6):
        print('host chatter table row', i, flush=True)
        with open(path + '.tmp', 'w') as f:
            json.dump(dict(phase='train', done=i, total=5, loss=1.0 / i), f)
        os.replace(path + '.tmp', path)
        time.sleep(0.15)
    sys.exit(int(sys.argv[1]))
''')


def test_run_logged_keeps_output_in_the_log_and_shows_progress(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv('MMEXT_PROGRESS_EVERY', '0')  # not a tty: print every update
    out = run_logged([sys.executable, '-c', CHILD, '0'], tmp_path / 'step.log', 'train', poll=0.05)
    term = capfd.readouterr()
    assert out.count('host chatter table row') == 5
    assert 'host chatter' not in term.out + term.err
    assert '/5' in term.err and 'phase' not in term.err and 'train  [' in term.err
    assert 'done in' in term.err and str(tmp_path / 'step.log') in term.err
    with pytest.raises(SystemExit, match=r'failed \(3\); log .*step.log:\nhost chatter table row 1'):
        run_logged([sys.executable, '-c', CHILD, '3'], tmp_path / 'step.log', 'train', poll=0.05)


def test_progress_line_render():
    line = ProgressLine('digits', width=10)
    line.t0 -= 10
    text = line.render(5, 20, 'epoch 1/3')
    assert '[##........] 5/20  25%' in text and 'eta 30s' in text and text.endswith('epoch 1/3')


def test_heartbeat_and_host_output_to(tmp_path, capfd):
    log = tmp_path / 'reid.log'
    with host_output_to(log), Heartbeat('reid', log=log, every=0) as hb:
        print('=> Loaded SynthPed\n  ----------------------------------------')
        hb.update(1, 2)
        import time
        time.sleep(1.3)
    term = capfd.readouterr()
    assert 'Loaded SynthPed' in log.read_text() and 'Loaded SynthPed' not in term.out + term.err
    assert 'reid' in term.err and '1/2' in term.err and 'done in' in term.err


def test_progress_hook_writes_the_status_a_progress_line_reads(tmp_path):
    import types
    import warnings

    import torch

    from mm_ext.engine.progress import read_status
    from mm_ext.engine.progress_hook import ProgressHook
    status = tmp_path / 'status.json'
    hook = ProgressHook(file=str(status), min_interval=0)
    runner = types.SimpleNamespace(train_loop=types.SimpleNamespace(max_epochs=3), iter=4, max_iters=10, epoch=1,
                                   max_epochs=3)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a loss tensor with grad is read without a warning
        hook.after_train_iter(runner, 0, outputs={'loss': torch.tensor(0.25, requires_grad=True) * 2})
    assert read_status(status) == dict(phase='train', done=5, total=10, loss=0.5, epoch=2, max_epochs=3)
