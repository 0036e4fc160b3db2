"""Every grafting / DGD config loads, pairs the sampler with the model and names registered types;
a few representative ones build their members."""
from pathlib import Path

import pytest
import torch

import mm_ext.mmpretrain  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
CFGS = sorted(p for p in (REPO / 'configs/mmpretrain/grafting').glob('*.py'))


@pytest.mark.parametrize('path', CFGS, ids=[p.stem for p in CFGS])
def test_config_is_consistent(path):
    from mmengine.config import Config
    from mmpretrain.registry import DATA_SAMPLERS, DATASETS, HOOKS, METRICS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS
    cfg = Config.fromfile(str(path))
    n = cfg.model.num_nets
    assert cfg.train_dataloader.sampler.num_streams == n
    assert cfg.train_dataloader.dataset.type == 'GraftingDataset'
    assert MODELS.get(cfg.model.type) and MODELS.get(cfg.model.net.backbone.type)
    assert DATA_SAMPLERS.get(cfg.train_dataloader.sampler.type) and DATASETS.get(cfg.train_dataloader.dataset.type)
    assert OPTIM_WRAPPER_CONSTRUCTORS.get(cfg.optim_wrapper.constructor)
    assert METRICS.get(cfg.val_evaluator.type)
    assert [h.type for h in cfg.custom_hooks] == ['GraftingHook'] and HOOKS.get('GraftingHook')
    name = path.stem
    assert (n == 1) == name.startswith('baseline')
    if name.startswith('dgd'):
        assert cfg.model.dgd['temperature'] == 2.0 and cfg.model.dgd['mode'] == 'kl'
        # own streams (teacher on the student's batch) unless the teacher reads shared batches
        shared = cfg.model.dgd.get('teacher_inputs', 'own') == 'shared'
        assert bool(cfg.train_dataloader.sampler.get('shared_order', False)) == shared
    if 'dlr' in name:
        assert cfg.optim_wrapper.lr_mode == 'diff'
        assert cfg.param_scheduler[0].type == 'CosineAnnealingLR' and cfg.param_scheduler[0].convert_to_iter_based
    if 'cifar100' in name:
        assert cfg.model.net.head.num_classes == 100 == cfg.model.data_preprocessor.num_classes
    if 'in1k' in name and not name.startswith('baseline-steplr'):
        assert cfg.param_scheduler[0].type == 'CosineAnnealingLR'  # baseline and grafting share the schedule


@pytest.mark.parametrize('name,out', [('grafting-dlr_resnet110-2net_1xb128-200e_cifar100', 100),
                                      ('grafting-slr_mobilenet-v2-2net_1xb128-200e_cifar10', 10),
                                      ('grafting-filter_vgg16-2net_1xb128-200e_cifar10', 10)])
def test_members_build(name, out):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    DefaultScope.get_instance('test_grafting_configs', scope_name='mmpretrain')
    cfg = Config.fromfile(str(REPO / f'configs/mmpretrain/grafting/{name}.py'))
    m = MODELS.build(cfg.model)
    logits = m(torch.zeros(2, 3, 32, 32), mode='tensor')
    assert len(logits) == 2 and logits[0].shape == (2, out)
