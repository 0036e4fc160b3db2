"""CACE-Net model and engine: factory registration, eval forward without pair tensors, zero-init
conditional features, top-k re-scoring, one engine epoch on synth-ped with checkpoint + resume."""
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import reid_ext  # noqa: F401
from reid_ext import checkpoint as ckpt_io
from reid_ext.apis import run
from reid_ext.config import load_config
from reid_ext.core.cace import CorrespondenceGCN, all_ordered_pairs, rescore_topk
from reid_ext.datagen.synth_ped import generate
from reid_ext.engines import cace_engine  # noqa: F401  (registers engine + models)
from reid_ext.models.cace_net import CACENet

CFG = 'configs/reid/cace_net/cace_net_tiny_synth-ped_quick.yaml'
SMALL = dict(num_train_ids=8, num_test_ids=4, cams_per_id=2, images_per_cam=2, num_distractors=2,
             height=32, width=16)


def _tiny(num_classes=5, **kw):
    kw.setdefault('embed_dim', 16)
    return CACENet(num_classes, backbone='tiny', non_local=1, **kw)


def test_cace_net_in_torchreid_factory():
    import torchreid
    m = torchreid.models.build_model('cace_net_tiny', num_classes=3, loss='triplet', pretrained=False)
    assert isinstance(m, CACENet)
    assert 'cace_net' in getattr(torchreid.models, '__model_factory')


def test_resnet50_variant_has_last_stride_1_and_three_non_local_blocks():
    from reid_ext.core.cace import NonLocalBlock
    m = CACENet(4, backbone='resnet50', embed_dim=32)
    assert sum(isinstance(x, NonLocalBlock) for x in m.modules()) == 3
    assert m.backbone.body[7][0].conv2.stride == (1, 1)
    assert m.head.reduce.in_features == 4096  # [GAP || GMP] of 2048 channels
    assert m.gcn.attend.out_channels == 128  # compression 16


def test_eval_forward_builds_no_pair_tensors(monkeypatch):
    torch.manual_seed(0)
    m = _tiny().eval()

    def boom(*a, **k):
        raise AssertionError('pair branch used in eval')

    monkeypatch.setattr(CorrespondenceGCN, 'forward', boom)
    monkeypatch.setattr(CorrespondenceGCN, 'forward_nodes', boom)
    monkeypatch.setattr(CorrespondenceGCN, 'project', boom)
    x = torch.randn(4, 3, 32, 16)
    f = m(x)
    assert f.shape == (4, 16)
    assert torch.allclose(f.norm(dim=1), torch.ones(4), atol=1e-5)  # L2-normalised embedding
    # reference: the head applied to the backbone maps by hand
    maps = m.backbone(x)
    ref = torch.cat([maps.mean((2, 3)), maps.amax((2, 3))], 1)
    ref = F.normalize(m.head.bn(m.head.reduce(ref)), dim=1)
    assert torch.allclose(f, ref, atol=1e-6)


def test_zero_init_conditional_features_equal_individual_at_start():
    torch.manual_seed(1)
    m = _tiny()
    x = torch.randn(4, 3, 32, 16)
    pi, pj = all_ordered_pairs(4)
    m.eval()
    with torch.no_grad():
        maps = m.backbone(x)
        f = m.head.embed(maps)
        f_ij, f_ji = m.pair_features(maps, pi, pj)
    assert torch.allclose(f_ij, f[pi], atol=1e-6) and torch.allclose(f_ji, f[pj], atol=1e-6)
    m.train()
    out = m(x, pair_index=(pi, pj))
    # all B^2 pairs: each image appears B times on each side, so even train-mode BN statistics
    # of the pair batch equal those of the image batch
    assert torch.allclose(out['feat_ij'], out['feat'][pi], atol=1e-4)


def test_gem_option():
    m = _tiny(pooling='gem').eval()
    assert m.head.reduce.in_features == 256
    assert m(torch.randn(2, 3, 32, 16)).shape == (2, 16)


def test_rescore_topk_hand_case():
    d = torch.tensor([[0.1, 0.5, 0.3, 0.9], [0.4, 0.2, 0.8, 0.6]])
    new = {(0, 0): 0.7, (0, 2): 0.2, (1, 1): 0.9, (1, 0): 0.1}

    def pair_distance(qi, gi):
        return torch.tensor([new[(int(q), int(g))] for q, g in zip(qi, gi)])

    out = rescore_topk(d, pair_distance, k=2, chunk=1)
    assert out[0].argsort().tolist() == [2, 0, 1, 3]
    assert out[1].argsort().tolist() == [0, 1, 3, 2]
    assert torch.isclose(out[0, 2], torch.tensor(0.2)) and torch.isclose(out[1, 1],
                                                                         torch.tensor(0.9))
    half = rescore_topk(d, pair_distance, k=2, weight=0.5, chunk=2)
    assert torch.isclose(half[0, 0], torch.tensor(0.5 * 0.7 + 0.5 * 0.1))


@pytest.fixture(scope='module')
def ped_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    generate(root / 'synth-ped', seed=3, **SMALL)
    return root


def _cfg(repo_root, root, save_dir, *extra):
    return load_config(str(repo_root / CFG), [
        'data.root', str(root), 'data.save_dir', str(save_dir), 'data.height', '32',
        'data.width', '16', 'train.batch_size', '8', 'test.batch_size', '32',
        'train.max_epoch', '2', 'train.checkpoint_period', '1', 'train.checkpoint_iters', '1',
        'train.checkpoint_keep', '50', 'cace.embed_dim', '16', 'train.seed', '2', *extra])


@pytest.mark.slow
def test_engine_epoch_runs_checkpoints_resumes_and_rescores(ped_root, tmp_path, repo_root,
                                                            monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    eng = run(_cfg(repo_root, ped_root, tmp_path / 'a', 'cace.rescore_topk', '5'))
    assert {'loss_x', 'loss_t', 'loss_mix', 'loss_pair', 'acc'} <= set(eng.epoch_losses)
    assert len(eng.history) == 2
    assert 'synth_ped' in eng.results and 'synth_ped' in eng.plain_results
    assert eng.rescore_seconds_per_query > 0
    files = sorted(os.path.basename(f) for f in ckpt_io.list_checkpoints(str(tmp_path / 'a')))
    assert 'ckpt_e0002_i0000000.pth' in files
    mids = [f for f in files if f.startswith('ckpt_e0001_i') and f != 'ckpt_e0001_i0000000.pth']
    assert mids, files
    # resume from a checkpoint inside the second epoch in a fresh directory
    (tmp_path / 'b' / 'checkpoints').mkdir(parents=True)
    shutil.copy(tmp_path / 'a' / 'checkpoints' / mids[0], tmp_path / 'b' / 'checkpoints')
    eng_b = run(_cfg(repo_root, ped_root, tmp_path / 'b', 'cace.rescore_topk', '5',
                     'model.resume', 'auto'))
    assert eng_b.start_epoch == 1 and eng_b.start_iter == int(mids[0][-11:-4])  # really resumed
    files_b = [os.path.basename(f) for f in ckpt_io.list_checkpoints(str(tmp_path / 'b'))]
    assert not any(f.startswith('ckpt_e0000') for f in files_b), files_b
    fa = ckpt_io.load_file(str(tmp_path / 'a' / 'checkpoints' / 'ckpt_e0002_i0000000.pth'))
    fb = ckpt_io.load_file(str(tmp_path / 'b' / 'checkpoints' / 'ckpt_e0002_i0000000.pth'))
    for k, v in fa['models']['model'].items():
        assert torch.equal(v, fb['models']['model'][k]), k
    st_a, st_b = fa['optimizers']['model']['state'], fb['optimizers']['model']['state']
    for k in st_a:
        for kk in st_a[k]:
            assert torch.equal(torch.as_tensor(st_a[k][kk]), torch.as_tensor(st_b[k][kk]))
    assert fa['schedulers']['model'] == fb['schedulers']['model']


@pytest.mark.slow
def test_baseline_config_trains_individual_losses_only(ped_root, tmp_path, repo_root,
                                                       monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    cfg = load_config(str(repo_root / 'configs/reid/cace_net/cace_net_tiny_synth-ped_baseline.yaml'),
                      ['data.root', str(ped_root), 'data.save_dir', str(tmp_path), 'data.height',
                       '32', 'data.width', '16', 'train.batch_size', '8', 'train.max_epoch', '1',
                       'cace.embed_dim', '16'])
    assert not cfg.cace.pair_branch
    eng = run(cfg)
    assert set(eng.epoch_losses) == {'loss_x', 'loss_t', 'acc'}
    assert np.isfinite(eng.results['synth_ped']['mAP'])


@pytest.mark.parametrize('name', ['market1501', 'dukemtmcreid', 'msmt17'])
def test_paper_configs_follow_the_spec(repo_root, name):
    cfg = load_config(str(repo_root / f'configs/reid/cace_net/cace_net_resnet50_{name}.yaml'))
    assert cfg.model.name == 'cace_net' and cfg.model.last_stride == 1
    assert (cfg.data.height, cfg.data.width) == (384, 128)
    assert cfg.data.sources == [name] and cfg.engine.name == 'cace'
    assert cfg.train.batch_size == 16 and cfg.sampler.num_instances == 4
    assert cfg.sampler.train_sampler == 'RandomIdentitySampler'
    assert abs(cfg.train.lr / cfg.train.batch_size - 0.0125 / 32) < 1e-12  # decision 2
    assert cfg.train.optim == 'sgd' and cfg.sgd.momentum == 0.9 and cfg.train.max_epoch == 80
    c = cfg.cace
    assert (c.alpha, c.margin, c.max_pairs, c.warmup_epochs) == (0.9, 0.5, 0, 5)
    assert cace_engine.CACEEngine.model_kwargs(cfg) == dict(
        last_stride=1, non_local=3, embed_dim=768, pooling='avgmax', reduction=16, dropout=0.5)
    assert cfg.test.flip and not c.label_smooth and c.rescore_topk == 0
