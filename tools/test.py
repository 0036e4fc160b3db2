#!/usr/bin/env python
"""Evaluate a checkpoint with any mm host's config (scope from ``default_scope``).

    python tools/test.py CONFIG CHECKPOINT [--work-dir D] [--cfg-options k=v ...]

The last line printed is ``metrics: {json}`` for scripts.
"""
import argparse
import json
import os
import sys

import mm_ext  # noqa: F401  compat fixes
from mm_ext.engine import init_cpu_distributed, prepare_cfg


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Test a checkpoint (mmdet / mmaction2 / mmpretrain config)')
    p.add_argument('config', help='test config file path')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='the dir to save logs and results')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, key=value')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _plain(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not os.path.isfile(path):
            raise SystemExit(f'test.py: {what} file {path!r} not found')
    cfg = prepare_cfg(Config.fromfile(args.config), args, for_test=True)
    cfg.load_from = args.checkpoint
    init_cpu_distributed(args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    metrics = runner.test()
    print('metrics: ' + json.dumps({k: _plain(v) for k, v in (metrics or {}).items()}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
