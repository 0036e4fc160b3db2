"""Distributed re-ID training: the shared P x K sampler, sharded evaluation, and a real 2-rank
gloo run under torchrun (lockstep, disjoint identities, gathered evaluation == one process)."""
import os
import subprocess
import sys
import textwrap
from collections import Counter

import numpy as np
import pytest
import torch

from reid_ddp import assert_lockstep, run_two_ranks, write_recorder
from reid_ext.sampler import (DistributedIdentityBatchSampler, DistributedRandomBatchSampler,
                              SeededDataset, ShardedBatchSampler)


def _pids(num_ids=13, per_id=(3, 5, 6, 9)):
    return [p for p in range(num_ids) for _ in range(per_id[p % len(per_id)])]


def _epoch(pids, world, epoch, bs=8, k=4, seed=3):
    out = []
    for r in range(world):
        s = DistributedIdentityBatchSampler(pids, bs, k, r, world, seed)
        s.set_epoch(epoch)
        out.append(list(s))
    return out


@pytest.mark.parametrize('world', [1, 2, 3])
def test_identity_sampler_disjoint_pk_batches_same_length_on_every_rank(world):
    pids = _pids()
    per_rank = _epoch(pids, world, epoch=2)
    lengths = {len(b) for b in per_rank}
    assert len(lengths) == 1 and lengths.pop() > 0  # lockstep: same number of iterations
    for step in zip(*per_rank):
        seen = set()
        for batch in step:
            counts = Counter(pids[i] for i, _ in batch)
            assert len(batch) == 8 and sorted(counts.values()) == [4, 4]  # P=2 ids x K=4
            assert not seen & set(counts)  # identities disjoint across ranks in one step
            seen |= set(counts)
    # within an identity's groups an image is drawn at most once unless the id has < K images
    flat = [i for rank in per_rank for batch in rank for i, _ in batch]
    dup = [i for i, c in Counter(flat).items() if c > 1]
    assert all(Counter(pids)[pids[i]] < 4 for i in dup)


def test_identity_sampler_is_a_function_of_seed_and_epoch_and_resumes_inside_an_epoch():
    pids = _pids()
    a, b = _epoch(pids, 2, epoch=5), _epoch(pids, 2, epoch=5)
    assert a == b
    assert _epoch(pids, 2, epoch=6) != a
    assert _epoch(pids, 2, epoch=5, seed=4) != a
    s = DistributedIdentityBatchSampler(pids, 8, 4, 1, 2, seed=3)
    s.set_epoch(5, start_iter=2)
    assert list(s) == a[1][2:] and len(s) == len(a[1]) - 2 and s.num_iters() == len(a[1])


def test_identity_sampler_bad_settings():
    with pytest.raises(ValueError, match='multiple of'):
        DistributedIdentityBatchSampler(_pids(), 10, 4)
    with pytest.raises(ValueError, match='identities cannot fill'):
        DistributedIdentityBatchSampler(_pids(num_ids=3), 8, 4, 0, 2)


def test_random_sampler_splits_one_permutation():
    world = 2
    parts = []
    for r in range(world):
        s = DistributedRandomBatchSampler(50, 8, r, world, seed=1)
        s.set_epoch(0)
        parts.append([i for batch in s for i, _ in batch])
    assert len(parts[0]) == len(parts[1]) == 24  # 3 global batches of 16, remainder dropped
    assert len(set(parts[0]) | set(parts[1])) == 48


def test_sharded_eval_batches_are_the_single_process_batches():
    single = list(ShardedBatchSampler(23, 5))
    assert single == [list(range(s, min(s + 5, 23))) for s in range(0, 23, 5)]
    shards = [ShardedBatchSampler(23, 5, r, 2) for r in range(2)]
    got = sorted((b, idx) for sh in shards for b, idx in zip(sh.batch_ids, sh))
    assert [idx for _, idx in got] == single


def test_seeded_dataset_draws_depend_on_the_key_only_and_leave_global_rng_alone():
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.rand(3) + i, float(np.random.rand())

    ds = SeededDataset(Noisy())
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = ds[(1, 123)]
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(10)  # other global draws do not change the sample
    b = ds[(1, 123)]
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    assert not torch.equal(ds[(1, 124)][0], a[0])


def test_slurm_environment_maps_to_torch_distributed(monkeypatch):
    from reid_ext import dist as rdist
    for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.setenv(k, 'x')  # recorded: _slurm_env's writes are undone after the test
        monkeypatch.delenv(k)
    monkeypatch.setenv('SLURM_PROCID', '5')
    monkeypatch.setenv('SLURM_NTASKS', '8')
    monkeypatch.setenv('SLURM_LOCALID', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'gpu[07-08]')
    monkeypatch.setenv('PATH', '/nonexistent')  # no scontrol: the node list is parsed
    rdist._slurm_env()
    assert [os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                                    'MASTER_PORT')] == ['5', '8', '1', 'gpu07', '29500']
    assert rdist.first_host('node[03-05,9],gpu1') == 'node03' and rdist.first_host('a,b') == 'a'


@pytest.mark.parametrize('config, expect', [
    ('configs/reid/va_reid/va_reid_tiny_synth-ped_quick.yaml',
     ['tools/reid_train.py', '--config-file', 'CFG', '--save-dir', 'WD', '--amp']),
    ('configs/mmpretrain/digits/resnet18-w16_1xb64-6e_digits-cifar.py',
     ['tools/train.py', 'CFG', '--work-dir', 'WD', '--launcher', 'slurm', '--amp'])])
def test_slurm_train_script_dispatches_both_sides(tmp_path, repo_root, config, expect):
    fake = tmp_path / 'srun'
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', GPUS='16', PYTHON='python')
    out = subprocess.run(['bash', str(repo_root / 'tools' / 'slurm_train.sh'), 'part', 'job', config,
                          'WD', '--amp'], env=env, capture_output=True, text=True, check=True,
                         cwd=str(repo_root)).stdout.split('\n')
    assert out[:6] == ['-p', 'part', '--job-name=job', '--gres=gpu:8', '--ntasks=16',
                       '--ntasks-per-node=8']
    got = out[out.index('-u') + 1:-1]
    got = [a.replace(str(repo_root) + '/', '').replace(config, 'CFG') for a in got]
    assert got == expect


# ---------------------------------------------------------------------------- 2-rank run
import torchreid  # noqa: E402  (a missing host fails, CI is strict)

SMALL = dict(num_train_ids=16, num_test_ids=12, cams_per_id=3, images_per_cam=2, num_distractors=4,
             height=32, width=16)


@pytest.fixture(scope='module')
def ddp_setup(tmp_path_factory):
    from reid_ext.datagen.synth_ped import generate
    root = tmp_path_factory.mktemp('ddp')
    generate(root / 'data' / 'synth-ped', seed=7, **SMALL)
    write_recorder(root / 'mods', 'ddp_recorder', 'recording_softmax', 'reid_ext.engines',
                   'ReidSoftmaxEngine')
    cfg = root / 'ddp.yaml'
    cfg.write_text(textwrap.dedent(f'''\
        custom_imports: ['ddp_recorder']
        model: {{name: bnneck_tiny, pretrained: False}}
        engine: {{name: recording_softmax}}
        data: {{root: '{root / 'data'}', sources: [synth_ped], targets: [synth_ped], height: 32,
               width: 16, workers: 0}}
        sampler: {{train_sampler: RandomIdentitySampler, num_instances: 4}}
        train: {{optim: adam, lr: 0.003, max_epoch: 12, batch_size: 8, lr_scheduler: single_step,
                stepsize: [100], print_freq: 1000, seed: 2}}
        loss: {{name: triplet, triplet: {{margin: 0.3}}}}
        test: {{batch_size: 8, normalize_feature: True}}
        '''))
    return root, cfg


def _env(repo_root, root):
    return dict(os.environ, OMP_NUM_THREADS='1',
                PYTHONPATH=os.pathsep.join([str(repo_root), str(root / 'mods')]))


def _single(repo_root, root, cfg, save_dir, *opts):
    cmd = [sys.executable, str(repo_root / 'tools' / 'reid_train.py'), '--config-file', str(cfg),
           '--save-dir', str(save_dir), *opts]
    proc = subprocess.run(cmd, cwd=str(repo_root), env=_env(repo_root, root), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_two_ranks_train_in_lockstep_and_gathered_eval_equals_one_process(ddp_setup, repo_root):
    root, cfg = ddp_setup
    out = root / 'ddp_run'
    recs, proc = run_two_ranks(repo_root, cfg, root / 'mods', out, '--export-features',
                               str(out / 'feats.npz'))
    assert 'DDP: 2 processes, global batch 16' in proc.stdout
    # lockstep: same number of steps, identical weights on both ranks after training;
    # each step: P = 2 identities per rank, disjoint between the ranks
    assert_lockstep(recs, ids_per_step=2)
    # rank 0 alone writes checkpoints and logs
    assert sorted(p.name for p in (out / 'checkpoints').iterdir())[-1] == 'ckpt_e0012_i0000000.pth'

    # the gathered evaluation equals a single-process evaluation of the same weights, exactly
    single = root / 'single_eval'
    _single(repo_root, root, cfg, single, '--test-only', '--export-features',
            str(single / 'feats.npz'), 'model.load_weights', str(out / 'model' / 'model.pth.tar-12'))
    ddp_feats, one_feats = np.load(out / 'feats.npz'), np.load(single / 'feats.npz')
    assert set(ddp_feats.files) == set(one_feats.files)
    for k in ddp_feats.files:
        np.testing.assert_array_equal(ddp_feats[k], one_feats[k], err_msg=k)
    res = recs[0]['results']['synth_ped']
    assert recs[1]['results']['synth_ped'] == res
    line = f'synth_ped: mAP {res["mAP"]:.4f}  Rank-1 {res["rank1"]:.4f}'
    assert line in proc.stdout and line in open(_log(single)).read()

    # it learned: the loss fell and mAP beats the untrained network (same seed, same init)
    for rec in recs:
        first, last = (c['loss_x'] + c['loss_t'] for c in (rec['history'][0], rec['history'][-1]))
        assert last < 0.7 * first, rec['history']
    untrained = root / 'untrained'
    _single(repo_root, root, cfg, untrained, '--test-only')
    text = open(_log(untrained)).read()
    untrained_map = float(text.split('synth_ped: mAP ')[1].split()[0])
    assert res['mAP'] > untrained_map + 0.05, (res['mAP'], untrained_map)


def _log(save_dir):
    logs = sorted(p for p in save_dir.iterdir() if p.name.startswith(('test.log', 'train.log')))
    return logs[-1]
