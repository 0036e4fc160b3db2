#!/usr/bin/env python
"""Train with any mm host's config (mmdet, mmaction2, mmpretrain; scope from ``default_scope``).

    python tools/train.py configs/mmpretrain/resnet18_digits-cifar.py --work-dir work_dirs/r18
    python tools/train.py CONFIG --resume                 # resume the newest intact checkpoint in work_dir
    python tools/train.py CONFIG --resume path/epoch_3.pth
    bash tools/dist_train.sh CONFIG 2                     # DDP (GPU: nccl; CPU: gloo)

Resuming is bit-exact by default: mm_ext.engine.ExactResumeHook stores every rank's random
generator and sampler state in each checkpoint and restores it (``--no-exact-resume``: off).
"""
import argparse
import os
import sys

import mm_ext  # noqa: F401  compat fixes (safe checkpoint loading on torch >= 2.6, ...)
from mm_ext.engine import add_common_args, build_runner, init_cpu_distributed, prepare_cfg


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train a model (mmdet / mmaction2 / mmpretrain config)')
    p.add_argument('config', help='train config file path')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from the given checkpoint, or from the latest one in work_dir')
    p.add_argument('--no-exact-resume', action='store_true',
                   help='do not add ExactResumeHook (generator/sampler state in checkpoints, restored on '
                        '--resume; on by default)')
    p.add_argument('--amp', action='store_true',
                   help='mixed precision (fp16 AmpOptimWrapper on GPU, bfloat16 autocast on CPU)')
    add_common_args(p)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    if not os.path.isfile(args.config):
        raise SystemExit(f'train.py: config file {args.config!r} not found')
    cfg = prepare_cfg(Config.fromfile(args.config), args)
    init_cpu_distributed(args.launcher)
    build_runner(cfg).train()
    return 0


if __name__ == '__main__':
    sys.exit(main())
