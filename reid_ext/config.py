"""Default yacs configuration of ``tools/reid_train.py`` (deep-person-reid's scripts/main.py style).

YAML files override these keys; unknown keys raise (yacs). Every key of deep-person-reid's
``scripts/default_config.py`` exists here with its meaning, so its YAML files merge; the
reid_ext additions are marked. A method declares its own top-level node through
:func:`reid_ext.registry.register_engine` (or :func:`~reid_ext.registry.register_config_node`);
:func:`get_default_config` collects them. YAML files load with :func:`load_config`, which imports
the file's ``custom_imports`` modules first.
"""
import os.path as osp

from yacs.config import CfgNode as CN

__all__ = ['get_default_config', 'load_config']


def get_default_config() -> CN:
    import reid_ext.engines  # noqa: F401  (registers reid_ext's engines and their nodes)
    from reid_ext.registry import CONFIG_NODES
    cfg = CN()
    cfg.use_gpu = False
    cfg.custom_imports = []  # reid_ext: modules to import before merging (register engines, nodes)

    cfg.model = CN()
    cfg.model.name = 'bnneck_resnet50'
    cfg.model.pretrained = False  # True needs the ImageNet weights pre-placed in the hub cache
    cfg.model.load_weights = ''
    cfg.model.resume = ''  # checkpoint path, or 'auto' = latest in save_dir/model
    cfg.model.last_stride = 1

    cfg.data = CN()
    cfg.data.type = 'image'
    cfg.data.root = 'data'
    cfg.data.sources = ['synth_ped']
    cfg.data.targets = ['synth_ped']
    cfg.data.workers = 2
    cfg.data.split_id = 0
    cfg.data.height = 256
    cfg.data.width = 128
    cfg.data.combineall = False
    cfg.data.transforms = ['random_flip']
    cfg.data.k_tfm = 1
    cfg.data.norm_mean = [0.485, 0.456, 0.406]
    cfg.data.norm_std = [0.229, 0.224, 0.225]
    cfg.data.save_dir = 'work_dirs/reid'
    cfg.data.load_train_targets = False

    cfg.market1501 = CN()
    cfg.market1501.use_500k_distractors = False
    cfg.cuhk03 = CN()
    cfg.cuhk03.labeled_images = False
    cfg.cuhk03.classic_split = False
    cfg.cuhk03.use_metric_cuhk03 = False

    cfg.sampler = CN()
    cfg.sampler.train_sampler = 'RandomIdentitySampler'
    cfg.sampler.train_sampler_t = 'RandomSampler'
    cfg.sampler.num_instances = 4
    cfg.sampler.num_cams = 1
    cfg.sampler.num_datasets = 1

    cfg.video = CN()  # accepted for deep-person-reid YAMLs; video re-ID is not supported
    cfg.video.seq_len = 15
    cfg.video.sample_method = 'evenly'
    cfg.video.pooling_method = 'avg'

    cfg.train = CN()
    cfg.train.optim = 'adam'
    cfg.train.lr = 3.5e-4
    cfg.train.weight_decay = 5e-4
    cfg.train.max_epoch = 120
    cfg.train.start_epoch = 0
    cfg.train.batch_size = 64
    cfg.train.fixbase_epoch = 0
    cfg.train.open_layers = ['classifier']
    cfg.train.staged_lr = False
    cfg.train.new_layers = ['classifier']
    cfg.train.base_lr_mult = 0.1
    cfg.train.lr_scheduler = 'warmup_multi_step'  # or torchreid's single_step|multi_step|cosine
    cfg.train.stepsize = [40, 70]
    cfg.train.gamma = 0.1
    cfg.train.warmup_epochs = 10
    cfg.train.warmup_factor = 0.01
    cfg.train.print_freq = 20
    cfg.train.seed = 1
    # reid_ext additions
    cfg.train.amp = False  # mixed precision (--amp): fp16 + GradScaler on GPU, bf16 autocast on CPU
    cfg.train.amp_dtype = 'auto'  # auto | float16 | bfloat16
    cfg.train.deterministic = False  # torch deterministic algorithms (bit-exact resume on GPU)
    cfg.train.checkpoint_period = 1  # full checkpoint every N epochs (independent of evaluation)
    cfg.train.checkpoint_iters = 0  # and every N iterations inside an epoch (0: off)
    cfg.train.checkpoint_keep = 3  # resume checkpoints kept (older ones are deleted)
    cfg.train.sync_bn = False  # convert BatchNorm to SyncBatchNorm under DDP
    # DDP: set True when some trainable parameters get no gradient in a step (fixbase_epoch,
    # branches used only in some iterations)
    cfg.train.find_unused_parameters = False

    cfg.sgd = CN()
    cfg.sgd.momentum = 0.9
    cfg.sgd.dampening = 0.0
    cfg.sgd.nesterov = False
    cfg.rmsprop = CN()
    cfg.rmsprop.alpha = 0.99
    cfg.adam = CN()
    cfg.adam.beta1 = 0.9
    cfg.adam.beta2 = 0.999

    cfg.engine = CN()
    cfg.engine.name = 'softmax'  # any registered engine: softmax | va_reid | act | cace | pisnet ...

    cfg.loss = CN()
    cfg.loss.name = 'softmax'  # softmax | triplet (model output contract)
    cfg.loss.softmax = CN()
    cfg.loss.softmax.label_smooth = True
    cfg.loss.triplet = CN()
    cfg.loss.triplet.margin = 0.3
    cfg.loss.triplet.weight_t = 1.0
    cfg.loss.triplet.weight_x = 1.0  # CE weight with loss.name triplet (deep-person-reid default: 0)

    cfg.test = CN()
    cfg.test.batch_size = 128
    cfg.test.dist_metric = 'euclidean'
    cfg.test.normalize_feature = False
    cfg.test.ranks = [1, 5, 10, 20]
    cfg.test.evaluate = False  # test only
    cfg.test.eval_freq = -1
    cfg.test.start_eval = 0
    cfg.test.rerank = False
    cfg.test.visrank = False
    cfg.test.visrank_topk = 10
    cfg.test.flip = False  # reid_ext: average the features of the image and its mirror image
    cfg.test.export_features = ''  # reid_ext: npz with features, paths, pids, camids per target

    for name, defaults in CONFIG_NODES.items():
        if name in cfg:
            raise KeyError(f'config node {name!r} of a registered engine clashes with a built-in '
                           f'key of reid_ext.config; rename the node')
        cfg[name] = defaults()
    return cfg


def load_config(path: str, opts=()) -> CN:
    """Defaults + the YAML ``path`` (its ``custom_imports`` imported first) + ``opts``.

    Args:
        path (str): YAML file.
        opts (Sequence): ``KEY VALUE`` pairs merged last (yacs ``merge_from_list``).
    """
    import yaml

    from reid_ext.registry import import_modules
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path!r} not found')
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ValueError(f'{path}: expected a mapping of config nodes, got {type(raw).__name__}')
    import_modules(raw.get('custom_imports') or [])
    opts = list(opts)
    for k, v in zip(opts[::2], opts[1::2]):
        if k == 'custom_imports':
            import_modules(yaml.safe_load(v) if isinstance(v, str) else v)
    cfg = get_default_config()
    try:
        cfg.merge_from_file(path)
    except KeyError as e:
        raise KeyError(f'{path}: {e}; a method node needs its engine module listed under '
                       f'custom_imports') from e
    cfg.merge_from_list(opts)
    return cfg

