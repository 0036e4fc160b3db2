"""Every video-SSL config loads and its model builds; pretraining configs keep the release's
hyper-parameters."""
from pathlib import Path

import pytest

pytest.importorskip('mmaction')

import mm_ext.mmaction  # noqa: F401,E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmaction.registry import MODELS  # noqa: E402

CFG_ROOT = Path(__file__).resolve().parents[2] / 'configs' / 'mmaction'
CONFIGS = sorted(p for d in ('dsm', 'tbe', 'moco', 'video_ssl_eval', 'scene_bias')
                 for p in (CFG_ROOT / d).glob('*.py'))


def test_configs_found():
    assert len(CONFIGS) >= 15


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_model_builds(path):
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmaction'
    if cfg.model.type == 'VideoContrastive':
        opt = cfg.optim_wrapper.optimizer
        method = path.stem.split('_')[0]
        assert cfg.model.mode == {'dsm-push': 'dsm', 'dsm-triplet': 'dsm_triplet',
                                  'retrieval': 'dsm', 'moco-intra': 'moco'}.get(method, method)
        if method == 'moco-intra':
            assert cfg.model.contrastive_cfg.moco_negative == 'intra'
        assert cfg.train_dataloader.drop_last is True
        if 'scene-bias' not in path.stem:
            assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 0.003, 0.9, 1e-4)
            assert cfg.model.contrastive_cfg.temperature == 0.07 and cfg.model.momentum == 0.999
            assert cfg.model.queue_len == (65536 if path.stem.startswith(('tbe_', 'be_')) and
                                           'kinetics' in path.stem else 3569)
        else:  # scene-bias: the queue is at most a quarter of the 96 default train clips
            assert cfg.model.queue_len <= 96 // 4


BUILD = ['dsm_r2plus1d-10_1xb4-16x4-200e_ucf101-split1', 'dsm_r3d-18_1xb4-16x4-200e_ucf101-split1',
         'dsm_c3d_1xb4-16x1-200e_ucf101-split1', 'retrieval_c3d_16x1_ucf101-split1',
         'finetune_r2plus1d-10_1xb4-16x1-45e_ucf101-split1',
         'linear_r3d-34_1xb32-16x1-50e_ucf101-split1', 'linear_c3d_1xb32-16x1-50e_ucf101-split1',
         'supervised_r3d-tiny_1xb8-8x1-20e_scene-bias-video',
         'tbe_r3d-tiny_1xb8-8x1-20e_scene-bias-video',
         'linear_r3d-tiny_1xb16-8x1-30e_scene-bias-video',
         'finetune_bninception-i3d_1xb4-64x1-45e_hmdb51-split1']


@pytest.mark.parametrize('name', BUILD)
def test_config_model_builds(name):
    path = next(p for p in CONFIGS if p.stem == name)
    cfg = Config.fromfile(str(path))
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0


BACKBONES = ('bninception-i3d', 'r3d-18', 'r3d-34', 'r2plus1d-10', 'c3d')


@pytest.mark.parametrize('backbone', BACKBONES)
def test_every_pretraining_backbone_has_finetune_linear_retrieval(backbone):
    names = {p.stem for p in CONFIGS}
    for kind in ('finetune', 'linear', 'retrieval'):
        assert any(n.startswith(f'{kind}_{backbone}_') for n in names), (kind, backbone)
    assert any(n.startswith(f'dsm_{backbone}_') for n in names)
    # the eval configs use the pretraining config's backbone type
    pre = Config.fromfile(str(next(p for p in CONFIGS if p.stem.startswith(f'dsm_{backbone}_'))))
    for kind in ('finetune', 'linear', 'retrieval'):
        path = next(p for p in CONFIGS if p.stem.startswith(f'{kind}_{backbone}_'))
        cfg = Config.fromfile(str(path))
        assert cfg.model.backbone.type == pre.model.backbone.type
        if kind == 'retrieval':  # multi-clip retrieval with k-NN
            pipe = cfg.test_dataloader.dataset.datasets[0].pipeline
            assert next(t for t in pipe if t['type'] == 'SampleFrames')['num_clips'] == 10
            assert cfg.test_evaluator.knn == (20,)
