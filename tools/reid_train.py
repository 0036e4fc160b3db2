#!/usr/bin/env python
"""Train / test torchreid models of reid_ext from a YAML config (deep-person-reid's main.py flow).

    python tools/reid_train.py --config-file configs/reid/va_reid/va_reid_tiny_synth-ped_quick.yaml
    python tools/reid_train.py --config-file CFG --resume auto          # latest checkpoint
    python tools/reid_train.py --config-file CFG --test-only model.load_weights PATH
    python tools/reid_train.py --config-file CFG --visrank model.load_weights PATH
    python tools/reid_train.py --config-file CFG train.max_epoch 5 data.save_dir work_dirs/x
    python tools/reid_train.py --config-file CFG --amp                 # mixed precision
    python tools/reid_train.py --config-file CFG --test-only --export-features feats.npz \
        model.load_weights PATH
    bash tools/reid_dist_train.sh CFG 4 [options]                      # DDP (torchrun)

Trailing ``KEY VALUE`` pairs override the config (yacs ``merge_from_list``). Under torchrun or
srun every process runs this script; rank 0 alone logs and writes checkpoints.
"""
import argparse
import os
import os.path as osp
import sys
import time

import reid_ext  # noqa: F401  (registers models and datasets)
from reid_ext import dist as rdist
from reid_ext.apis import run
from reid_ext.config import load_config


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config-file', required=True, help='YAML config (keys of reid_ext.config)')
    p.add_argument('--root', default=None, help='data root (holds synth-ped/, market1501/, ...)')
    p.add_argument('-s', '--sources', nargs='+', default=None, help='training datasets')
    p.add_argument('-t', '--targets', nargs='+', default=None, help='test datasets')
    p.add_argument('--save-dir', default=None, help='output folder (data.save_dir)')
    p.add_argument('--resume', default=None, help="checkpoint to resume from, or 'auto'")
    p.add_argument('--test-only', action='store_true', help='evaluate only (test.evaluate)')
    p.add_argument('--visrank', action='store_true', help='evaluate and save ranked-result pictures')
    p.add_argument('--amp', action='store_true',
                   help='mixed precision (train.amp): fp16 + GradScaler on GPU, bfloat16 on CPU')
    p.add_argument('--export-features', default=None, metavar='NPZ',
                   help='save test features, paths, pids and camids (test.export_features)')
    p.add_argument('--flip', action='store_true', help='flip test-time augmentation (test.flip)')
    p.add_argument('opts', nargs=argparse.REMAINDER, help='KEY VALUE overrides')
    return p.parse_args(argv)


def build_config(args):
    cfg = load_config(args.config_file)
    if args.root is not None:
        cfg.data.root = args.root
    if args.sources is not None:
        cfg.data.sources = args.sources
    if args.targets is not None:
        cfg.data.targets = args.targets
    if args.save_dir is not None:
        cfg.data.save_dir = args.save_dir
    if args.resume is not None:
        cfg.model.resume = args.resume
    if args.test_only:
        cfg.test.evaluate = True
    if args.visrank:
        cfg.test.visrank = True
    if args.amp:
        cfg.train.amp = True
    if args.export_features is not None:
        cfg.test.export_features = args.export_features
    if args.flip:
        cfg.test.flip = True
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    return cfg


def main(argv=None):
    import torchreid
    args = parse_args(argv)
    cfg = build_config(args)
    rdist.init_distributed(cfg.use_gpu)
    if rdist.is_main_process():
        log = osp.join(cfg.data.save_dir, ('test' if cfg.test.evaluate else 'train') + '.log-' +
                       time.strftime('%Y-%m-%d-%H-%M-%S'))
        sys.stdout = torchreid.utils.Logger(log)
        print(f'Config:\n{cfg}')
        if rdist.is_distributed():
            print(f'DDP: {rdist.get_world_size()} processes, global batch '
                  f'{rdist.get_world_size() * cfg.train.batch_size}')
    else:
        sys.stdout = open(os.devnull, 'w')  # rank 0 alone prints
    engine = run(cfg)
    if rdist.is_main_process():
        for name, res in engine.results.items():
            print(f'{name}: mAP {res["mAP"]:.4f}  Rank-1 {res["rank1"]:.4f}')
    return engine


if __name__ == '__main__':
    try:
        main()
    finally:
        if rdist.is_distributed():
            import torch.distributed as dist
            dist.destroy_process_group()
