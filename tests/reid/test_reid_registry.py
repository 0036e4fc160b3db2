"""Pluggable base: an engine registered from outside reid_ext runs from YAML; deep-person-reid YAML
keys merge; the model output convention; evaluation steps overridable one by one."""
import textwrap

import numpy as np
import pytest
import torch

import torchreid  # noqa: E402  (a missing host fails, CI is strict)

import reid_ext  # noqa: E402,F401
from reid_ext.apis import run  # noqa: E402
from reid_ext.config import get_default_config, load_config  # noqa: E402
from reid_ext.engines import as_outputs  # noqa: E402
from reid_ext.registry import ENGINES, get_engine, register_engine  # noqa: E402


EXTERNAL = '''
import numpy as np
import torch
from yacs.config import CfgNode as CN
from reid_ext.engines.base_engine import ReidExtEngine, as_outputs
from reid_ext.registry import register_engine


def _node():
    node = CN()
    node.center_weight = 0.0
    node.flip_sign = False
    return node


@register_engine('outside_method', node=('outside_method', _node))
class OutsideEngine(ReidExtEngine):
    """CE + a centre-pull term; scores = negated cosine similarity when flip_sign."""

    def __init__(self, datamanager, model, optimizer, scheduler=None, use_gpu=False,
                 center_weight=0.0, flip_sign=False):
        super().__init__(datamanager, use_gpu)
        self.model = self.register_model('model', model, optimizer, scheduler)
        self.center_weight, self.flip_sign = center_weight, flip_sign
        self.calls = []

    @classmethod
    def from_config(cls, cfg, datamanager, model, optimizer, scheduler):
        n = cfg.outside_method
        return cls(datamanager, model, optimizer, scheduler, use_gpu=cfg.use_gpu,
                   center_weight=n.center_weight, flip_sign=n.flip_sign)

    def forward_loss(self, data):
        out = as_outputs(self.model(data['img']))
        loss = torch.nn.functional.cross_entropy(out['logits'], data['pid'])
        if self.center_weight:
            loss = loss + self.center_weight * out['feat'].pow(2).mean()
        return loss, {'loss': loss.item()}

    def compute_distance(self, query, gallery, *args, **kwargs):
        self.calls.append('distance')
        d = super().compute_distance(query, gallery, *args, **kwargs)
        return -d if self.flip_sign else d

    def compute_metrics(self, distmat, query, gallery, **kwargs):
        self.calls.append('metrics')
        res = super().compute_metrics(distmat, query, gallery, **kwargs)
        res['num_gallery'] = int(distmat.shape[1])
        return res
'''


@pytest.fixture
def outside_module(tmp_path, monkeypatch):
    mods = tmp_path / 'mods'
    mods.mkdir()
    (mods / 'outside_method_pkg.py').write_text(EXTERNAL)
    monkeypatch.syspath_prepend(str(mods))
    yield 'outside_method_pkg'
    ENGINES.pop('outside_method', None)
    from reid_ext.registry import CONFIG_NODES
    CONFIG_NODES.pop('outside_method', None)


def _yaml(tmp_path, root, engine_lines, max_epoch=2):
    path = tmp_path / 'method.yaml'
    path.write_text(textwrap.dedent(f'''\
        model: {{name: bnneck_tiny, pretrained: False}}
        data: {{root: '{root}', height: 32, width: 16, workers: 0}}
        loss: {{name: triplet}}
        train: {{max_epoch: {max_epoch}, batch_size: 8, lr: 0.003, lr_scheduler: single_step,
                stepsize: [100], print_freq: 1000}}
        test: {{batch_size: 16, normalize_feature: True}}
        ''') + textwrap.dedent(engine_lines))
    return str(path)


@pytest.mark.slow
def test_engine_registered_outside_reid_ext_runs_from_yaml(small_root, tmp_path, outside_module):
    body = f'''\
        custom_imports: ['{outside_module}']
        engine: {{name: outside_method}}
        outside_method: {{center_weight: 0.5, flip_sign: False}}
        '''
    cfg = load_config(_yaml(tmp_path, small_root, body), ['data.save_dir', str(tmp_path / 'a')])
    assert cfg.outside_method.center_weight == 0.5
    engine = run(cfg)
    assert type(engine).__name__ == 'OutsideEngine'
    assert engine.calls == ['distance', 'metrics']
    res = engine.results['synth_ped']
    assert res['num_gallery'] == len(engine.datamanager.fetch_test_loaders('synth_ped')[1])
    # the overridden distance step is what gets ranked: negated distances invert the ranking
    flipped = load_config(_yaml(tmp_path, small_root, body.replace('flip_sign: False',
                                                                   'flip_sign: True')),
                          ['data.save_dir', str(tmp_path / 'b')])
    res_flipped = run(flipped).results['synth_ped']
    assert res_flipped['mAP'] < res['mAP']


def test_unknown_engine_and_node_errors_name_the_fix(small_root, tmp_path):
    with pytest.raises(KeyError, match='custom_imports'):
        get_engine('not_an_engine')
    path = _yaml(tmp_path, small_root, 'mystery_method: {alpha: 1}\n')
    with pytest.raises(KeyError, match='custom_imports'):
        load_config(path)
    with pytest.raises(ImportError, match='custom_imports'):
        load_config(_yaml(tmp_path, small_root, "custom_imports: ['no_such_module_xyz']\n"))


def test_registry_refuses_a_different_class_under_a_taken_name():
    with pytest.raises(KeyError, match='already registered'):
        @register_engine('softmax')
        class Other(reid_ext.engines.ReidExtEngine):
            pass


def test_deep_person_reid_yaml_merges(tmp_path):
    # keys as in deep-person-reid's configs/*.yaml and scripts/default_config.py
    path = tmp_path / 'im_osnet_x1_0_softmax_256x128_amsgrad.yaml'
    path.write_text(textwrap.dedent('''\
        model:
          name: 'osnet_x1_0'
          pretrained: True
        data:
          type: 'image'
          sources: ['market1501']
          targets: ['market1501']
          height: 256
          width: 128
          combineall: False
          transforms: ['random_flip']
          save_dir: 'log/osnet_x1_0_market1501_softmax'
          load_train_targets: False
        sampler:
          train_sampler: 'RandomSampler'
          train_sampler_t: 'RandomSampler'
          num_cams: 1
          num_datasets: 1
        video:
          seq_len: 15
          sample_method: 'evenly'
          pooling_method: 'avg'
        loss:
          name: 'softmax'
          softmax:
            label_smooth: True
          triplet:
            weight_x: 0.
        train:
          optim: 'amsgrad'
          lr: 0.0015
          max_epoch: 150
          batch_size: 64
          fixbase_epoch: 10
          open_layers: ['classifier']
          lr_scheduler: 'cosine'
        test:
          batch_size: 300
          dist_metric: 'euclidean'
          normalize_feature: False
          evaluate: False
          eval_freq: -1
          rerank: False
        '''))
    cfg = load_config(str(path), ['train.lr', 0.003])
    assert cfg.model.name == 'osnet_x1_0' and cfg.train.optim == 'amsgrad' and cfg.train.lr == 0.003
    assert cfg.loss.triplet.weight_x == 0.0 and cfg.engine.name == 'softmax'
    assert cfg.model.name in getattr(torchreid.models, '__model_factory')


def test_output_convention():
    logits, feat = torch.randn(2, 5), torch.randn(2, 3)
    assert as_outputs(logits)['logits'] is logits
    out = as_outputs((logits, feat))
    assert out['logits'] is logits and out['feat'] is feat
    d = {'logits': logits, 'view_logits': feat}
    assert as_outputs(d) is d
    with pytest.raises(TypeError, match='model output'):
        as_outputs([logits, feat, feat])


@pytest.mark.slow
def test_flip_tta_and_feature_export(small_root, tmp_path):
    cfg = get_default_config()
    cfg.merge_from_list(['model.name', 'bnneck_tiny', 'data.root', str(small_root),
                         'data.save_dir', str(tmp_path), 'data.height', 32, 'data.width', 16,
                         'data.workers', 0, 'train.batch_size', 8, 'test.batch_size', 16,
                         'test.evaluate', True,
                         'test.export_features', str(tmp_path / 'plain.npz')])
    engine = run(cfg)
    plain = np.load(tmp_path / 'plain.npz')
    query, gallery = engine.datamanager.fetch_test_loaders('synth_ped')
    assert list(plain['query_paths']) == [q[0] for q in query]
    assert list(plain['gallery_pids']) == [g[1] for g in gallery]
    assert list(plain['query_camids']) == [q[2] for q in query]
    cfg.merge_from_list(['test.flip', True, 'test.export_features', str(tmp_path / 'flip.npz')])
    run(cfg)
    flip = np.load(tmp_path / 'flip.npz')
    # reference: the same network on mirrored images, averaged with the plain features
    model = engine.model.eval()  # same seed, same untrained weights as the flip run
    imgs = next(iter(engine.test_loader['synth_ped']['query']))['img']
    with torch.no_grad():
        ref = ((model(imgs) + model(imgs.flip(3))) / 2).numpy()
    np.testing.assert_allclose(flip['query_features'][:len(ref)], ref, rtol=1e-5, atol=1e-6)
    assert not np.allclose(flip['query_features'], plain['query_features'])
