"""Config preparation and CPU-capable distributed launch shared by the mm tools."""
import os
import os.path as osp

import torch


def init_cpu_distributed(launcher: str) -> bool:
    """Initialise a gloo process group when no GPU is present.

    mmengine's ``pytorch``/``slurm`` launchers call ``torch.cuda.set_device``
    unconditionally, so on a CPU-only machine the tools set the group up
    themselves before the Runner does (the Runner then skips ``init_dist``).

    Returns:
        bool: True if a gloo group was initialised here.
    """
    import torch.distributed as dist
    if launcher == 'none' or torch.cuda.is_available() or dist.is_initialized():
        return False
    if launcher == 'slurm':
        os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
        os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
        os.environ.setdefault('MASTER_PORT', '29500')
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher {launcher} needs the environment variables {missing}; '
                           'start the tool with torchrun (tools/dist_train.sh) or srun')
    dist.init_process_group(backend='gloo')
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for ``MASTER_PORT`` / ``PORT`` of local
    multi-process runs: tests, benchmarks)."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def add_common_args(parser) -> None:
    """The options ``tools/train.py`` and ``tools/test.py`` share."""
    from mmengine.config import DictAction
    parser.add_argument('--work-dir', help='the dir to save logs, models and results')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (e.g. train_cfg.max_epochs=2)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def build_runner(cfg):
    """The config's own runner (``runner_type``) or mmengine's ``Runner``."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def prepare_cfg(cfg, args, for_test: bool = False):
    """Apply the common command-line options to an mmengine ``Config``."""
    cfg.launcher = args.launcher
    if getattr(args, 'cfg_options', None):
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.launcher != 'none' and not torch.cuda.is_available():
        # CPU DDP: gloo and a device-less DDP wrapper
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
        wrapper = dict(cfg.get('model_wrapper_cfg', None) or dict(type='MMDistributedDataParallel'))
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
    from .progress_hook import inject_progress
    inject_progress(cfg)  # only when $MMEXT_PROGRESS_FILE is set (demo progress lines)
    if for_test:
        return cfg
    if getattr(args, 'amp', False):
        ow = cfg.get('optim_wrapper', None)
        if ow is None:
            raise ValueError(f'--amp: {args.config} has no optim_wrapper to switch to mixed precision')
        if torch.cuda.is_available():
            if ow.get('type', 'OptimWrapper') != 'AmpOptimWrapper':
                ow['type'] = 'AmpOptimWrapper'
                ow.setdefault('loss_scale', 'dynamic')
        else:
            import mm_ext.engine.cpu_amp  # noqa: F401  registers CPUAmpOptimWrapper
            ow['type'] = 'CPUAmpOptimWrapper'
            ow.pop('loss_scale', None)
    if not getattr(args, 'no_exact_resume', False):
        from .exact_resume import inject_exact_resume
        inject_exact_resume(cfg)
    if args.resume == 'auto':
        from .checkpoint_files import find_resume_checkpoint
        cfg.resume = True
        # newest intact checkpoint (a truncated/corrupt latest one is skipped with a warning);
        # None: nothing to resume, mmengine starts from scratch
        cfg.load_from = find_resume_checkpoint(cfg.work_dir)
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume {args.resume}: no such checkpoint file')
        from .checkpoint_files import checkpoint_problem
        why = checkpoint_problem(args.resume)
        if why is not None:
            raise RuntimeError(f'--resume {args.resume}: {why}. Use an intact checkpoint, e.g. '
                               f'--resume with no file picks the newest intact one in the work dir.')
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg
