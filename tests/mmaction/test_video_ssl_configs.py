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
                                  'retrieval': 'dsm'}.get(method, method)
        assert cfg.train_dataloader.drop_last is True
        if 'scene-bias' not in path.stem:
            assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 0.003, 0.9, 1e-4)
            assert cfg.model.contrastive_cfg.temperature == 0.07 and cfg.model.momentum == 0.999
            assert cfg.model.queue_len == (65536 if path.stem.startswith('tbe_') and 'kinetics' in
                                           path.stem else 3569)


BUILD = ['dsm_r2plus1d-10_1xb4-16x4-200e_ucf101-split1', 'dsm_r3d-18_1xb4-16x4-200e_ucf101-split1',
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
