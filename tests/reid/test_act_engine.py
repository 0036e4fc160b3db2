"""ACTEngine: one round on a tiny synth-ped pair runs, checkpoints (round, eps, pseudo-labels,
both networks and optimisers) and resumes mid-round to the same final state; Theory checkpoints
in open-reid's layout load into ACTNet."""
import os

import numpy as np
import pytest
import torch
import torchvision

import reid_ext  # noqa: F401
from reid_ext import checkpoint as ckpt_io
from reid_ext.apis import run
from reid_ext.config import load_config
from reid_ext.core.act_net import ACTNet
from reid_ext.datagen.synth_ped import generate
from reid_ext.engines import act_engine
from reid_ext.models.backbones import build_backbone

SMALL = dict(num_train_ids=12, num_test_ids=6, cams_per_id=3, images_per_cam=2, num_distractors=4,
             height=32, width=16)
CFG = 'configs/reid/act/act_tiny_synth-ped_quick.yaml'


@pytest.fixture(scope='module')
def pair_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    generate(root / 'synth-ped', seed=5, **SMALL)
    generate(root / 'synth-ped-style1', seed=6, style=1, **SMALL)
    return root


def _cfg(repo_root, root, save_dir, *extra):
    return load_config(str(repo_root / CFG), [
        'data.root', str(root), 'data.save_dir', str(save_dir), 'model.load_weights', '',
        'data.height', '32', 'data.width', '16', 'train.batch_size', '8', 'test.batch_size', '32',
        'train.checkpoint_period', '1', 'train.checkpoint_iters', '1', 'train.checkpoint_keep',
        '50', 'act.num_rounds', '1', 'act.epochs', '2', 'act.rho', '0.05', 'act.min_samples', '3',
        'act.eval_direct', 'False', 'train.seed', '3', *extra])


def _same_state(a, b):
    for what in ('models', 'optimizers'):
        for name in ('model', 'collab'):
            sa, sb = a[what][name], b[what][name]
            if what == 'optimizers':
                sa, sb = sa['state'], sb['state']
            assert sa.keys() == sb.keys()
            for k in sa:
                va, vb = sa[k], sb[k]
                if isinstance(va, dict):
                    for kk in va:
                        assert torch.equal(torch.as_tensor(va[kk]), torch.as_tensor(vb[kk])), \
                            (what, name, k, kk)
                else:
                    assert torch.equal(va, vb), (what, name, k)


@pytest.mark.slow
def test_one_round_runs_checkpoints_and_resumes_mid_round(pair_root, tmp_path, repo_root,
                                                          monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    eng = run(_cfg(repo_root, pair_root, tmp_path / 'a'))
    assert len(eng.round_history) == 1
    h = eng.round_history[0]
    assert h['num_clusters'] >= 2 and 0 <= h['outlier_frac'] < 1
    assert 'mAP_synth_ped_style1' in h  # M evaluated on the target after the round
    assert {'loss_c', 'loss_m', 'outliers'} <= set(eng.epoch_losses)  # C and M steps, outliers
    files = [os.path.basename(f) for f in ckpt_io.list_checkpoints(str(tmp_path / 'a'))]
    assert 'ckpt_e0001_i0000000.pth' in files and 'ckpt_e0002_i0000000.pth' in files
    mids = [f for f in files if f.startswith('ckpt_e0001_i') and not f.endswith('i0000000.pth')]
    assert mids, files  # a checkpoint inside the second epoch
    final = ckpt_io.load_file(str(tmp_path / 'a' / 'checkpoints' / 'ckpt_e0002_i0000000.pth'))
    st = final['engine']
    n_target = len(eng.target_items)
    assert st['labels_round'] == 0 and isinstance(st['eps'], float) and st['eps'] > 0
    assert st['labels'].shape == (n_target,) and (st['labels'] >= 0).all()
    assert st['inlier'].shape == (n_target,)
    assert set(final['models']) == {'model', 'collab'} and set(final['optimizers']) == {'model',
                                                                                      'collab'}
    assert os.path.isfile(tmp_path / 'a' / 'model' / 'model.pth.tar-2')  # deployed M

    def no_recluster(self, r):
        raise AssertionError('a resume inside a round must reuse the saved pseudo-labels')

    monkeypatch.setattr(act_engine.ACTEngine, 'cluster', no_recluster)
    for resume in ('ckpt_e0001_i0000000.pth', mids[0]):  # epoch boundary, inside an epoch
        out = tmp_path / f'b_{resume}'
        res = run(_cfg(repo_root, pair_root, out, 'model.resume',
                       str(tmp_path / 'a' / 'checkpoints' / resume)))
        again = ckpt_io.load_file(str(out / 'checkpoints' / 'ckpt_e0002_i0000000.pth'))
        _same_state(final, again)
        assert again['engine']['eps'] == st['eps']
        np.testing.assert_array_equal(again['engine']['labels'], st['labels'])
        np.testing.assert_array_equal(again['engine']['inlier'], st['inlier'])
        assert res.round_history[0]['mAP_synth_ped_style1'] == h['mAP_synth_ped_style1']


def test_theory_checkpoint_in_open_reid_layout_loads(tmp_path):
    tv = torchvision.models.resnet18()
    feat, feat_bn = torch.nn.Linear(512, 64), torch.nn.BatchNorm1d(64)
    torch.nn.init.normal_(feat_bn.weight)
    state = {f'module.base.{k}': v for k, v in tv.state_dict().items() if not k.startswith('fc.')}
    state.update({f'module.feat.{k}': v for k, v in feat.state_dict().items()})
    state.update({f'module.feat_bn.{k}': v for k, v in feat_bn.state_dict().items()})
    state['module.classifier.weight'] = torch.randn(632, 64)
    path = tmp_path / 'theory.pth.tar'
    torch.save({'state_dict': state, 'epoch': 70}, path)
    net = ACTNet(build_backbone('resnet18', 2), 512, 64)
    missing = act_engine.load_theory_checkpoint(net, str(path))
    assert missing == []
    assert torch.equal(net.backbone.body[0].weight, tv.conv1.weight)
    assert torch.equal(net.backbone.body[7][1].conv2.weight, tv.layer4[1].conv2.weight)
    assert torch.equal(net.backbone.body[1].running_var, tv.bn1.running_var)
    assert torch.equal(net.embedding[0].weight, feat.weight)
    assert torch.equal(net.embedding[1].weight, feat_bn.weight)
    with pytest.raises(ValueError, match='backbone'):
        torch.save({'state_dict': {'x.weight': torch.zeros(1)}}, tmp_path / 'bad.pth')
        act_engine.load_theory_checkpoint(net, str(tmp_path / 'bad.pth'))


@pytest.mark.slow
@pytest.mark.parametrize('variant', [('act.coteaching', 'symmetric'),
                                     ('act.clustering', 'kmeans', 'act.kmeans_k', '12')])
def test_variants_run_one_round(variant, pair_root, tmp_path, repo_root, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    eng = run(_cfg(repo_root, pair_root, tmp_path, 'act.epochs', '1', *variant))
    h = eng.round_history[0]
    if 'kmeans' in variant:
        assert h['num_clusters'] == 12 and h['outlier_frac'] == pytest.approx(0.2, abs=0.02)
        assert {'loss_c', 'loss_m', 'outliers'} <= set(eng.epoch_losses)
    else:
        assert {'loss_c', 'loss_m'} <= set(eng.epoch_losses) and 'outliers' not in eng.epoch_losses
    assert 'mAP_synth_ped_style1' in h


def test_all_act_configs_load_with_paper_constants(repo_root):
    files = sorted((repo_root / 'configs' / 'reid' / 'act').glob('*.yaml'))
    assert len(files) >= 14
    for f in files:
        cfg = load_config(str(f))
        if f.name.startswith('source_only'):
            assert cfg.engine.name == 'softmax'
            continue
        a = cfg.act
        assert cfg.engine.name == 'act' and cfg.data.load_train_targets, f.name
        assert (a.k1, a.k2, a.lam, a.rho, a.min_samples, a.margin) == (20, 6, 0.1, 0.0016, 4,
                                                                         0.5), f.name
        assert (a.remember_start, a.remember_end) == (0.2, 1.0), f.name
        if 'resnet50' in f.name:
            assert (a.num_rounds, a.epochs, cfg.train.lr, cfg.model.last_stride) == (10, 30, 6e-5,
                                                                                    2), f.name
            assert not cfg.test.normalize_feature and cfg.data.sources != cfg.data.targets
