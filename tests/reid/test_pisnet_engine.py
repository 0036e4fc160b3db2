"""PISNet stage-2 engine: one epoch runs (only attention blocks change), checkpoints, resumes
exactly (triples re-drawn per epoch from the seed); evaluation reports both protocols and the
re-scoring equals per-pair model calls."""
import shutil

import numpy as np
import pytest
import torch

import reid_ext  # noqa: F401
from reid_ext import checkpoint as ckpt_io
from reid_ext.apis import run
from reid_ext.config import load_config
from reid_ext.datagen.synth_pi import generate
from reid_ext.engines import pisnet_engine  # noqa: F401

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
