"""Shared pieces of the 2-rank gloo re-ID tests (base engine, CACE-Net, PISNet): a recording engine
subclass, the launch through ``tools/reid_dist_train.sh`` and the per-rank records it writes."""
import os
import subprocess
import sys

import torch

from mm_ext.engine.launch import free_port

_RECORDER = '''
import os.path as osp
import torch
from reid_ext import dist as rdist
from reid_ext.engines.base_engine import _unwrap
from {base_module} import {base_cls}
from reid_ext.registry import register_engine


@register_engine({engine!r})
class Recording{base_cls}({base_cls}):
    """{base_cls} that records each step's identities and, after the run, its rank's results,
    loss history and weights."""

    def forward_backward(self, data):
        self.steps.append(sorted(set(data['pid'].tolist())))
        return super().forward_backward(data)

    def run(self, **kwargs):
        self.steps = []
        out = super().run(**kwargs)
        torch.save(dict(steps=self.steps, history=self.history, results=self.results,
                        state=_unwrap(self.model).state_dict()),
                   osp.join(kwargs['save_dir'], f'record_rank{{rdist.get_rank()}}.pt'))
        return out
'''


def write_recorder(mods_dir, module, engine, base_module, base_cls):
    """Write ``mods_dir/module.py`` registering engine ``engine``: a recording ``base_cls``."""
    os.makedirs(mods_dir, exist_ok=True)
    with open(os.path.join(mods_dir, f'{module}.py'), 'w') as f:
        f.write(_RECORDER.format(base_module=base_module, base_cls=base_cls, engine=engine))


def run_two_ranks(repo_root, cfg, mods_dir, save_dir, *opts, timeout=400):
    """``tools/reid_dist_train.sh CFG 2`` on gloo ranks (``mods_dir`` importable); asserts exit 0 and
    returns the records of both ranks and the finished process."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable, PORT=str(free_port()),
               PYTHONPATH=os.pathsep.join([str(repo_root), str(mods_dir)]))
    cmd = ['bash', str(repo_root / 'tools' / 'reid_dist_train.sh'), str(cfg), '2',
           '--save-dir', str(save_dir), *opts]
    proc = subprocess.run(cmd, cwd=str(repo_root), env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    recs = [torch.load(save_dir / f'record_rank{r}.pt', weights_only=False) for r in range(2)]
    return recs, proc


def assert_lockstep(recs, ids_per_step=None):
    """Both ranks took the same number of steps and end with identical weights; with
    ``ids_per_step``, every step drew that many identities per rank, disjoint between the ranks."""
    assert len(recs[0]['steps']) == len(recs[1]['steps']) > 0
    for k, v in recs[0]['state'].items():
        assert torch.equal(v, recs[1]['state'][k]), k
    if ids_per_step is not None:
        for a, b in zip(recs[0]['steps'], recs[1]['steps']):
            assert len(a) == len(b) == ids_per_step and not set(a) & set(b)
