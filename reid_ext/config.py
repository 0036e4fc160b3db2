"""Default yacs configuration of ``tools/reid_train.py`` (deep-person-reid's scripts/main.py style).

YAML files override these keys; unknown keys raise (yacs), so every method's node is declared
here (``va_reid`` now; later methods add theirs).
"""
from yacs.config import CfgNode as CN

__all__ = ['get_default_config']


def get_default_config() -> CN:
    cfg = CN()
    cfg.use_gpu = False

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

    cfg.market1501 = CN()
    cfg.market1501.use_500k_distractors = False
    cfg.cuhk03 = CN()
    cfg.cuhk03.labeled_images = False
    cfg.cuhk03.classic_split = False
    cfg.cuhk03.use_metric_cuhk03 = False

    cfg.sampler = CN()
    cfg.sampler.train_sampler = 'RandomIdentitySampler'
    cfg.sampler.num_instances = 4

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
    cfg.engine.name = 'softmax'  # softmax | va_reid

    cfg.loss = CN()
    cfg.loss.name = 'softmax'  # softmax | triplet (model output contract)
    cfg.loss.softmax = CN()
    cfg.loss.softmax.label_smooth = True
    cfg.loss.triplet = CN()
    cfg.loss.triplet.margin = 0.3
    cfg.loss.triplet.weight_t = 1.0

    cfg.va_reid = CN()
    cfg.va_reid.view_label_file = ''  # '' = the dataset's own file (synth-ped) or none
    cfg.va_reid.num_views = 3
    cfg.va_reid.scale = 30.0
    cfg.va_reid.lsr = 'valsr'  # valsr | static | adaptive | none
    cfg.va_reid.epsilon = 0.2
    cfg.va_reid.weight_id = 1.0
    cfg.va_reid.weight_view = 1.0
    cfg.va_reid.weight_t = 1.0
    cfg.va_reid.margin = 0.6
    cfg.va_reid.weight_vp = 1.0
    cfg.va_reid.vaal = False
    cfg.va_reid.vaal_margin_id = 0.3
    cfg.va_reid.vaal_margin_view = 0.1
    cfg.va_reid.vaal_reg_weight = 1.0

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
    return cfg
