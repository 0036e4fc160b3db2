"""PISNet stage-2 engine: one epoch runs (only attention blocks change), checkpoints, resumes
exactly (triples re-drawn per epoch from the seed); evaluation reports both protocols and the
re-scoring equals per-pair model calls; pre-selection by the frozen stage-1 part equals the
separate stage-1 model (``pisnet.preselect_weights``), which selects the candidates when given."""
import shutil

import numpy as np
import pytest
import torch

import reid_ext  # noqa: F401
from reid_ext import checkpoint as ckpt_io
from reid_ext.apis import run
from reid_ext.config import load_config
from reid_ext.datagen.synth_pi import generate
from reid_ext.engines.pisnet_engine import load_stage1_model
from reid_ext.models.bnneck_resnet import BNNeckReID
from reid_ext.models.pisnet import PISNet

SMALL = dict(num_train_ids=4, num_test_ids=4, num_cams=3, cams_per_id=2, images_per_cam=2,
             crops_per_id=2, num_unlabelled=2, height=32, width=16)
CFG = 'configs/reid/pisnet/pisnet_tiny_synth-pi_stage2.yaml'


@pytest.fixture(scope='module')
def pi_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    generate(root / 'synth-pi', seed=3, **SMALL)
    return root


def _cfg(repo_root, root, save_dir, *extra):
    return load_config(str(repo_root / CFG), [
        'data.root', str(root), 'data.save_dir', str(save_dir), 'model.load_weights', '',
        'data.height', '32', 'data.width', '16', 'train.batch_size', '8', 'test.batch_size', '16',
        'sampler.num_instances', '2', 'train.checkpoint_period', '1', 'train.checkpoint_keep', '10',
        'pisnet.topk', '5', 'pisnet.min_len', '3', 'pisnet.rescore_batch', '2', 'train.seed', '1',
        'train.warmup_epochs', '0', 'train.stepsize', '[10]', 'train.print_freq', '1000', *extra])


@pytest.mark.slow
def test_stage2_epoch_runs_checkpoints_and_resumes(pi_data, tmp_path, repo_root):
    torch.manual_seed(0)
    ref = run(_cfg(repo_root, pi_data, tmp_path / 'ref', 'train.max_epoch', '2'))
    res = ref.results['synth_pi']
    for k in ('mAP', 'rank1', 'full_mAP', 'full_rank1'):
        assert 0.0 <= res[k] <= 1.0
    # the triples were re-drawn for the last epoch (epoch index 1), same crops in the same order
    ds = ref.train_loader.dataset
    assert ds.train == ds._triples(1)
    assert [t[0][1:] for t in ds.train] != [t[0][1:] for t in ds._triples(0)]
    ckpts = sorted((tmp_path / 'ref' / 'checkpoints').glob('ckpt_e*.pth'))
    assert len(ckpts) == 2
    first, last = ckpt_io.load_file(str(ckpts[0])), ckpt_io.load_file(str(ckpts[1]))
    # only the attention blocks trained; BN statistics of the frozen part unchanged
    init = run(_cfg(repo_root, pi_data, tmp_path / 'init', 'train.max_epoch', '0'))
    s0 = init.model.state_dict()
    for k, v in last['models']['model'].items():
        if k.startswith(('qgab.', 'gram.')):
            continue
        assert torch.equal(v, s0[k]), k
    assert not torch.equal(last['models']['model']['qgab.theta.weight'], s0['qgab.theta.weight'])
    # resume from the epoch-1 checkpoint reaches the same final state
    run_dir = tmp_path / 'resumed'
    (run_dir / 'checkpoints').mkdir(parents=True)
    shutil.copy(ckpts[0], run_dir / 'checkpoints' / ckpts[0].name)
    assert first['epoch'] == 1
    resumed = run(_cfg(repo_root, pi_data, run_dir, 'train.max_epoch', '2', 'model.resume', 'auto'))
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, last['models']['model'][k]), k
    assert resumed.results['synth_pi']['mAP'] == pytest.approx(res['mAP'])


def test_batched_rescoring_equals_pairwise_model_calls(pi_data, tmp_path, repo_root):
    engine = run(_cfg(repo_root, pi_data, tmp_path / 'e', 'train.max_epoch', '0',
                      'test.evaluate', 'True'), keep_distmat=True)
    net = engine.model.eval()
    dm = engine.datamanager
    q = engine.extract(dm.test_loader['synth_pi']['query'])
    g = engine.extract(dm.test_loader['synth_pi']['gallery'])
    dist = engine.compute_distance(q, g)
    gal = dm.test_loader['synth_pi']['gallery'].dataset.gallery_pids
    assert g['pid_lists'] == [gal[p] for p in g['paths']] and min(map(len, g['pid_lists'])) >= 2
    qi = 0
    ranked = np.argsort(dist[qi], kind='stable')[:5]
    with torch.no_grad():
        qf = torch.nn.functional.normalize(q['feats'][qi:qi + 1], dim=1)
        for j in ranked:
            gf = net.guided_features(g['maps'][j:j + 1], q['maps'][qi:qi + 1])
            d = (torch.nn.functional.normalize(gf, dim=1) - qf).norm()
            assert float(d) == pytest.approx(dist[qi, j], abs=1e-5)
    # candidates outside the top-5 keep their pre-selection order after the re-scored ones
    assert (np.sort(dist[qi])[5:] >= 2).all() and (np.sort(dist[qi])[:5] <= 2).all()


def _stage1_checkpoint(path, seed):
    """A stage-1 BoT (tiny) checkpoint in torchreid's format, with BN statistics away from (0, 1)."""
    torch.manual_seed(seed)
    m = BNNeckReID(4, 'triplet', 'tiny').train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(8, 3, 32, 16) * 2 + 0.5)
    torch.save({'state_dict': m.state_dict(), 'epoch': 1}, path)
    return m.eval()


def test_frozen_stage1_part_is_bit_identical_to_the_stage1_model(pi_data, tmp_path, repo_root):
    """Default pre-selection (PISNet's frozen part after a stage-2 epoch) == a separately loaded
    stage-1 model (``pisnet.preselect_weights``): same features bit for bit, same distance matrix."""
    w = tmp_path / 'stage1.pth'
    _stage1_checkpoint(w, 0)
    eng = run(_cfg(repo_root, pi_data, tmp_path / 'a', 'model.load_weights', str(w),
                   'pisnet.preselect_weights', str(w), 'train.max_epoch', '1'), keep_distmat=True)
    assert len(eng.history) == 1 and eng.get_model_names() == ['model', 'preselect']
    state = eng._optims['model'].state[eng.model.qgab.theta.weight]
    assert float(state['step']) > 0  # stage 2 trained the attention blocks
    sd = torch.load(w, weights_only=False)['state_dict']
    loaders = eng.datamanager.test_loader['synth_pi']
    q, g = eng.extract(loaders['query']), eng.extract(loaders['gallery'])
    for out in (q, g):
        assert torch.equal(out['feats'], out['plain'])
    d_sep = eng.compute_distance(q, g)
    np.testing.assert_array_equal(d_sep, eng.distmats['synth_pi'])
    eng.preselect = None  # the default path: pre-selection on PISNet's own frozen part
    q0, g0 = eng.extract(loaders['query']), eng.extract(loaders['gallery'])
    assert 'plain' not in q0 and torch.equal(q0['feats'], q['feats'])
    np.testing.assert_array_equal(eng.compute_distance(q0, g0), d_sep)
    # the full checkpoint carries the pre-selection model
    last = ckpt_io.load_file(str(sorted((tmp_path / 'a' / 'checkpoints').glob('ckpt_e*.pth'))[-1]))
    for k, v in sd.items():
        assert torch.equal(last['models']['preselect'][k], v), k


def test_separate_preselection_model_selects_candidates(pi_data, tmp_path, repo_root):
    """With another stage-1 checkpoint, the top-k candidates are that model's and the re-scoring
    compares with PISNet's own un-attended query feature."""
    w, w2 = tmp_path / 's1.pth', tmp_path / 'other.pth'
    _stage1_checkpoint(w, 0)
    other = _stage1_checkpoint(w2, 1)
    eng = run(_cfg(repo_root, pi_data, tmp_path / 'e', 'model.load_weights', str(w),
                   'pisnet.preselect_weights', str(w2), 'train.max_epoch', '0',
                   'test.evaluate', 'True'))
    loaders = eng.datamanager.test_loader['synth_pi']
    q, g = eng.extract(loaders['query']), eng.extract(loaders['gallery'])
    batch = next(iter(loaders['query']))
    with torch.no_grad():
        torch.testing.assert_close(q['feats'][:len(batch['img'])], other(batch['img']),
                                   rtol=0, atol=0)
        assert not torch.allclose(q['feats'], q['plain'])
        dist = eng.compute_distance(q, g)
        norm = torch.nn.functional.normalize
        pre = torch.cdist(norm(q['feats'], dim=1), norm(g['feats'], dim=1)).numpy()
        for i in range(len(dist)):
            top = np.argsort(pre[i], kind='stable')[:5]
            assert set(np.flatnonzero(dist[i] < 2)) == set(top.tolist())
            qm = q['maps'][i:i + 1].expand(5, -1, -1, -1)
            gf = norm(eng.model.guided_features(g['maps'][top], qm), dim=1)
            ref = (gf - norm(q['plain'][i:i + 1], dim=1)).norm(dim=1)
            np.testing.assert_allclose(dist[i, top], ref.numpy(), rtol=1e-5, atol=1e-6)


def test_preselect_weights_errors_name_the_option(tmp_path):
    net = PISNet(4, backbone='tiny')
    with pytest.raises(FileNotFoundError, match='pisnet.preselect_weights'):
        load_stage1_model(net, str(tmp_path / 'missing.pth'))
    torch.save({'foo': 1}, tmp_path / 'junk.pth')
    with pytest.raises(ValueError, match=r'junk\.pth.*not a BNNeck'):
        load_stage1_model(net, str(tmp_path / 'junk.pth'))
    sd = BNNeckReID(4, 'triplet', 'tiny').state_dict()
    del sd['bnneck.weight']
    torch.save({'state_dict': sd}, tmp_path / 'partial.pth')
    with pytest.raises(ValueError, match=r"partial\.pth.*'tiny' backbone.*bnneck\.weight"):
        load_stage1_model(net, str(tmp_path / 'partial.pth'))
    # a PISNet checkpoint's stage-1 part (attention keys ignored) and DDP prefixes load
    full = {'module.' + k: v for k, v in PISNet(4, backbone='tiny').state_dict().items()}
    torch.save({'state_dict': full}, tmp_path / 'pisnet.pth')
    assert not load_stage1_model(net, str(tmp_path / 'pisnet.pth')).training


def test_bf16_autocast_stage2_step_on_cpu(pi_data, tmp_path, repo_root):
    """One stage-2 step under the base engine's CPU autocast (bfloat16): the attention blocks run
    in bf16, the loss is finite, only they change and stay fp32."""
    from reid_ext.apis import (build_datamanager, build_engine, build_model, build_optimizer,
                               build_scheduler, build_train_loader)
    cfg = _cfg(repo_root, pi_data, tmp_path, 'train.amp', 'True', 'train.max_epoch', '1')
    dm = build_datamanager(cfg)
    dm.train_loader = build_train_loader(cfg, dm.train_loader.dataset, cfg.train.seed)
    model = build_model(cfg, dm.num_train_pids)
    opt = build_optimizer(cfg, model)
    engine = build_engine(cfg, dm, model, opt, build_scheduler(cfg, opt))
    assert engine.amp and engine.amp_dtype == torch.bfloat16 and not engine.scaler.is_enabled()
    dtypes = []
    model.qgab.theta.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    engine.set_model_mode('train')
    engine.train_loader.batch_sampler.set_epoch(0)
    summary = engine.forward_backward(next(iter(engine.train_loader)))
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert set(summary) == {'loss_ce', 'loss_tri', 'loss_mps', 'loss_gram'}
    assert all(np.isfinite(v) for v in summary.values())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith(('qgab.', 'gram.')) for k in changed)
    assert any(k.startswith('gram.') for k in changed)  # the GRAM branch got a gradient too


@pytest.mark.slow
def test_two_rank_gloo_stage2_epoch(pi_data, tmp_path, repo_root):
    """A stage-2 epoch on 2 CPU ranks (gloo, tools/reid_dist_train.sh): lockstep weights, disjoint
    p1 identities per step, the gathered PI evaluation equals one process on the saved weights."""
    import yaml
    from reid_ddp import assert_lockstep, run_two_ranks, write_recorder
    mods = tmp_path / 'mods'
    write_recorder(mods, 'pisnet_recorder', 'recording_pisnet', 'reid_ext.engines.pisnet_engine',
                   'PISNetEngine')
    cfg = yaml.safe_load((repo_root / CFG).read_text())
    cfg['custom_imports'] = ['reid_ext.engines.pisnet_engine', 'pisnet_recorder']
    cfg['engine']['name'] = 'recording_pisnet'
    cfg['model']['load_weights'] = ''
    cfg['data'].update(root=str(pi_data), height=32, width=16)
    cfg['train'].update(batch_size=4, max_epoch=1, warmup_epochs=0, stepsize=[10], seed=1,
                        print_freq=1000)
    cfg['sampler']['num_instances'] = 2
    cfg['test']['batch_size'] = 16
    cfg['pisnet'].update(topk=5, min_len=3, rescore_batch=2)
    path = tmp_path / 'ddp.yaml'
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / 'ddp'
    recs, proc = run_two_ranks(repo_root, path, mods, out)
    assert 'DDP: 2 processes, global batch 8' in proc.stdout
    assert_lockstep(recs, ids_per_step=2)
    res = recs[0]['results']['synth_pi']
    assert recs[1]['results']['synth_pi'] == res
    one = run(_cfg(repo_root, pi_data, tmp_path / 'one', 'model.load_weights',
                   str(out / 'model' / 'model.pth.tar-1'), 'test.evaluate', 'True'))
    for k in ('mAP', 'rank1', 'full_mAP', 'full_rank1', 'num_valid'):
        assert one.results['synth_pi'][k] == res[k], k
