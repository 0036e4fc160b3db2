"""CACE-Net model and engine: factory registration, eval forward without pair tensors, zero-init
conditional features, top-k re-scoring, one engine epoch on synth-ped with checkpoint + resume."""
import os
import shutil
import subprocess
import sys

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


def test_bare_reid_ext_import_registers_cace_models_idempotently(repo_root):
    # a fresh interpreter that imports reid_ext only (not the cace engine module)
    code = ('import sys, reid_ext, torchreid\n'
            "m = torchreid.models.build_model('cace_net_tiny', num_classes=3, loss='softmax',\n"
            "                                 pretrained=False)\n"
            "assert 'reid_ext.engines.cace_engine' not in sys.modules\n"
            "print(type(m).__name__, 'cace_net' in getattr(torchreid.models, '__model_factory'))\n")
    res = subprocess.run([sys.executable, '-c', code], cwd=str(repo_root), capture_output=True,
                         text=True, timeout=300, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split()[-2:] == ['CACENet', 'True']
    # here the engine module registered them too: registering again keeps the same factories
    from reid_ext._register import _model_factory, register_all
    from reid_ext.models import cace_net as module
    before = {k: _model_factory()[k] for k in ('cace_net', 'cace_net_tiny')}
    register_all()
    module.register()
    assert before == {'cace_net': module.cace_net, 'cace_net_tiny': module.cace_net_tiny}
    assert all(_model_factory()[k] is v for k, v in before.items())


def test_fast_pair_path_equals_dense_pair_path_in_the_model():
    torch.manual_seed(6)
    m = _tiny().double()
    torch.nn.init.normal_(m.gcn.out.weight, std=0.1)
    x = torch.randn(4, 3, 32, 16, dtype=torch.float64)
    pi, pj = all_ordered_pairs(4)
    res = []
    for fast in (True, False):
        m.fast_pairs = fast
        m.zero_grad()
        out = m(x, pair_index=(pi, pj))
        (out['feat_ij'].pow(2).sum() + out['feat_ji'].sum()).backward()
        res.append((out['feat_ij'].detach(), out['feat_ji'].detach(),
                    {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}))
    assert torch.allclose(res[0][0], res[1][0], atol=1e-10)
    assert torch.allclose(res[0][1], res[1][1], atol=1e-10)
    assert res[0][2].keys() == res[1][2].keys() and 'gcn.out.weight' in res[0][2]
    for k, g in res[0][2].items():
        assert torch.allclose(g, res[1][2][k], atol=1e-9), k


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


def _engine(model, **kw):
    from types import SimpleNamespace
    dm = SimpleNamespace(train_loader=None, test_loader={},
                         num_train_pids=model.classifier.out_features)
    eng = cace_engine.CACEEngine(dm, model, torch.optim.SGD(model.parameters(), lr=0.1), **kw)
    eng.configure()
    return eng


def test_bounded_rescoring_equals_direct_formula():
    """Blocked re-scoring (a cache of 2 maps: one query and one gallery image at a time) and
    one-block re-scoring both equal D_qg computed directly from all maps."""
    torch.manual_seed(7)
    m = _tiny()
    torch.nn.init.normal_(m.gcn.out.weight, std=0.1)
    m.eval()
    with torch.no_grad():
        shape = m.backbone(torch.zeros(1, 3, 32, 16)).shape[1:]
    qm, gm = torch.rand(5, *shape), torch.rand(12, *shape)
    dm = torch.rand(5, 12)

    def direct(qi, gi):
        with torch.no_grad():
            f_q, f_g = m.pair_features(torch.cat([qm, gm]), qi, gi + 5)
        return (F.normalize(f_q, dim=1) - F.normalize(f_g, dim=1)).norm(dim=1)

    ref = rescore_topk(dm, direct, k=4, weight=0.7, chunk=5)
    per_map = 4 * qm[0].numel() / 2 ** 20
    for cache_mb, pairs in ((2.5 * per_map, 3), (1000.0, 200)):
        eng = _engine(m, rescore_topk=4, rescore_weight=0.7, rescore_half=False,
                      rescore_cache_mb=cache_mb, rescore_pairs=pairs)
        calls = []

        def src(maps, name):
            def get(idx):
                calls.append((name, len(idx)))
                return maps[idx]
            return get

        top = dm.topk(4, dim=1, largest=False).indices
        new = eng.rescore_distances(top, src(qm, 'q'), src(gm, 'g'))
        out = cace_engine.rescore_combine(dm, top, new, 0.7)
        assert torch.allclose(out, ref, atol=1e-5)
        sizes = [n for name, n in calls[1:]]  # calls[0]: the probe of the map size
        if cache_mb < 1:
            assert max(sizes) == 1 and sum(n for name, n in calls[1:] if name == 'q') == 5
        else:
            assert [name for name, n in calls[1:]] == ['q', 'g'] and sizes[0] == 5
    # the engine path through compute_distance with given maps
    q = {'feats': torch.randn(5, 16), 'maps': qm, 'pids': np.arange(5),
         'camids': np.zeros(5, np.int64)}
    g = {'feats': torch.randn(12, 16), 'maps': gm, 'pids': np.arange(12) % 5,
         'camids': np.ones(12, np.int64)}
    eng = _engine(m, rescore_topk=4, rescore_half=False, rescore_cache_mb=2.5 * per_map)
    plain = torch.as_tensor(cace_engine.ReidExtEngine.compute_distance(eng, q, g))
    got = torch.as_tensor(eng.compute_distance(q, g))
    assert torch.allclose(got, rescore_topk(plain, direct, k=4), atol=1e-5)


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


def test_bf16_autocast_step_on_cpu(ped_root, tmp_path, repo_root):
    from reid_ext.apis import (build_datamanager, build_engine, build_model, build_optimizer,
                               build_scheduler, build_train_loader)
    cfg = _cfg(repo_root, ped_root, tmp_path, 'train.amp', 'True')
    dm = build_datamanager(cfg)
    dm.train_loader = build_train_loader(cfg, dm.train_loader.dataset, cfg.train.seed)
    model = build_model(cfg, dm.num_train_pids)
    opt = build_optimizer(cfg, model)
    engine = build_engine(cfg, dm, model, opt, build_scheduler(cfg, opt))
    assert engine.amp and engine.amp_dtype == torch.bfloat16
    dm.train_loader.batch_sampler.set_epoch(0)
    batch = next(iter(dm.train_loader))
    dtypes = []
    model.backbone.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        _, ref = engine.forward_loss(batch)  # float32
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    summary = engine.forward_backward(batch)  # bf16 autocast + backward + step
    assert dtypes == [torch.float32, torch.bfloat16]
    assert {'loss_x', 'loss_t', 'loss_mix', 'loss_pair'} <= set(summary)
    for k in ('loss_x', 'loss_mix', 'loss_t', 'loss_pair'):  # same batch, same weights
        assert abs(summary[k] - ref[k]) <= 0.05 * abs(ref[k]) + 0.02, (k, summary[k], ref[k])
    assert all(p.dtype == torch.float32 for p in model.parameters())
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert {'gcn.out.weight', 'gcn.attend.weight', 'pair_classifier.weight'} <= changed


@pytest.mark.slow
def test_two_rank_gloo_ddp_smoke(ped_root, tmp_path, repo_root):
    """The cace engine through the base engine's DDP path (tools/reid_dist_train.sh, gloo)."""
    from reid_ddp import assert_lockstep, run_two_ranks, write_recorder
    write_recorder(tmp_path / 'mods', 'cace_recorder', 'recording_cace', 'reid_ext.engines.cace_engine',
                   'CACEEngine')
    text = (repo_root / CFG).read_text()
    assert 'custom_imports: [reid_ext.engines.cace_engine]' in text and 'name: cace\n' in text
    cfg = tmp_path / 'cace_ddp.yaml'
    cfg.write_text(text.replace('custom_imports: [reid_ext.engines.cace_engine]',
                                'custom_imports: [cace_recorder]')
                   .replace('name: cace\n', 'name: recording_cace\n'))
    recs, proc = run_two_ranks(repo_root, cfg, tmp_path / 'mods', tmp_path / 'ddp',
                               'data.root', str(ped_root), 'data.height', '32', 'data.width', '16',
                               'train.batch_size', '8', 'test.batch_size', '32', 'train.max_epoch', '2',
                               'cace.embed_dim', '16', 'cace.rescore_topk', '3')
    assert 'DDP: 2 processes, global batch 16' in proc.stdout
    assert_lockstep(recs)  # identical weights on both ranks
    assert recs[0]['state']['gcn.out.weight'].abs().sum() > 0  # the pair branch trained
    assert recs[0]['results'] == recs[1]['results'] and 'synth_ped' in recs[0]['results']
    assert {'loss_mix', 'loss_pair'} <= set(recs[0]['history'][-1])
