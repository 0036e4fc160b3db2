"""The named filters hide exactly the listed host deprecations (and nothing else)."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CODE = '''
import warnings
import mm_ext
import torchreid  # its rank module warns about the missing Cython evaluation at import
from mmengine.logging import MMLogger, print_log
from mmengine.fileio import FileClient
MMLogger.get_instance('t', log_level='INFO')
FileClient(backend='disk')  # logs the FileClient / HardDiskBackend deprecations
print_log('an unrelated warning stays', logger='current', level=30)
warnings.warn('an unrelated python warning stays', UserWarning)
'''


def _run(show):
    env = {k: v for k, v in os.environ.items() if k != 'MMEXT_SHOW_HOST_DEPRECATIONS'}
    if show:
        env['MMEXT_SHOW_HOST_DEPRECATIONS'] = '1'
    r = subprocess.run([sys.executable, '-W', 'default', '-c', CODE], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout + r.stderr


def test_named_filters_hide_only_the_listed_messages():
    shown, quiet = _run(True), _run(False)
    for text in ('Cython evaluation (very fast so highly recommended) is unavailable',
                 '"FileClient" will be deprecated in future', '"HardDiskBackend" is the alias'):
        assert text in shown and text not in quiet, text
    for text in ('an unrelated warning stays', 'an unrelated python warning stays'):
        assert text in shown and text in quiet
