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
from mm_ext.engine import add_common_args, build_runner, init_cpu_distributed, prepare_cfg


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Test a checkpoint (mmdet / mmaction2 / mmpretrain config)')
    p.add_argument('config', help='test config file path')
    p.add_argument('checkpoint', help='checkpoint file')
    add_common_args(p)
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

    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not os.path.isfile(path):
            raise SystemExit(f'test.py: {what} file {path!r} not found')
    cfg = prepare_cfg(Config.fromfile(args.config), args, for_test=True)
    cfg.load_from = args.checkpoint
    init_cpu_distributed(args.launcher)
    metrics = build_runner(cfg).test()
    print('metrics: ' + json.dumps({k: _plain(v) for k, v in (metrics or {}).items()}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
