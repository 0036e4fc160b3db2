"""Filter grafting / DGD in mmpretrain: drivers on stock backbones, sampler, optimiser, metric,
one-process vs rank mode, kill-and-resume."""
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mm_ext.mmpretrain  # noqa: F401  registers the adapters
from mm_ext.core.grafting import reference_drivers, structural_drivers
from mm_ext.engine.launch import free_port

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / 'configs/mmpretrain/grafting/grafting_resnet20-w8-2net_1xb64-15e_clutter-shapes.py'


def _build(cfg):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    DefaultScope.get_instance('test_grafting', scope_name='mmpretrain')
    return MODELS.build(cfg)


def _classifier(backbone, in_channels):
    return _build(dict(type='ImageClassifier', backbone=backbone, neck=dict(type='GlobalAveragePooling'),
                       head=dict(type='LinearClsHead', num_classes=10, in_channels=in_channels)))


def test_structural_drivers_on_stock_resnet50():
    net = _classifier(dict(type='ResNet', depth=50), 2048)
    keys = list(net.state_dict())
    d = structural_drivers(net, lambda: net(torch.zeros(1, 3, 64, 64), mode='tensor'), keys)
    b = 'backbone.layer1.0.'
    assert d['backbone.conv1.weight'] == d['backbone.bn1.running_mean'] == 'backbone.conv1.weight'
    for i in (1, 2, 3):
        assert d[f'{b}conv{i}.weight'] == d[f'{b}bn{i}.weight'] == d[f'{b}bn{i}.num_batches_tracked'] \
            == f'{b}conv{i}.weight'
    # the projection shortcut and its BN inherit the block's last conv; so does the classifier
    assert d[f'{b}downsample.0.weight'] == d[f'{b}downsample.1.running_var'] == f'{b}conv3.weight'
    assert d['head.fc.weight'] == d['head.fc.bias'] == 'backbone.layer4.2.conv3.weight'
    assert len({v for v in d.values()}) == 1 + 16 * 3  # stem + 3 convs per bottleneck, no shortcut driver


def test_structural_drivers_on_stock_mobilenet_v2():
    net = _classifier(dict(type='MobileNetV2', widen_factor=0.5), 1280)
    keys = list(net.state_dict())
    d = structural_drivers(net, lambda: net(torch.zeros(1, 3, 32, 32), mode='tensor'), keys)
    convs = [k for k in keys if k.endswith('conv.weight')]
    for k in keys:
        if '.bn.' in k:  # ConvModule: every BN follows its own conv
            assert d[k] == k.split('.bn.')[0] + '.conv.weight'
    assert all(d[c] == c for c in convs)
    assert d['head.fc.weight'] == 'backbone.conv2.conv.weight'
    # the official substring rule gives every BN of these ConvModules its own ('conv' in its key) coefficient
    ref = reference_drivers(keys)
    assert ref['backbone.conv1.bn.weight'] == 'backbone.conv1.bn.weight' != d['backbone.conv1.bn.weight']


def test_sampler_streams_are_full_and_rank_independent():
    from mm_ext.mmpretrain.grafting import GraftingSampler
    ds = list(range(10))
    s = GraftingSampler(ds, num_streams=3, seed=5, per_rank=False)
    s.set_epoch(2)
    items = list(s)
    assert len(items) == 10 and all(len(x) == 3 for x in items)
    orders = [[x[k][0] for x in items] for k in range(3)]
    assert all(sorted(o) == list(range(10)) for o in orders)  # every member reads the whole set
    assert len({tuple(o) for o in orders}) == 3  # in its own order
    assert orders[1] == s._stream(1)[0]  # the stream a rank-mode sampler on rank 1 reads
    s.set_epoch(3)
    assert [x[1][0] for x in s] != orders[1]
    shared = GraftingSampler(ds, num_streams=2, seed=5, shared_order=True, per_rank=False)
    assert all(x[0] == x[1] for x in shared)


def test_dataset_seeds_augmentation_per_sample():
    from mm_ext.mmpretrain.grafting import GraftingDataset
    import numpy as np

    class Noisy:
        metainfo = {}

        def __len__(self):
            return 5

        def __getitem__(self, i):
            return i + np.random.rand()

    ds = GraftingDataset(Noisy())
    a = ds[[(1, 7), (2, 8)]]['nets']
    np.random.seed(123)
    b = ds[[(2, 8), (1, 7)]]['nets']
    assert a == b[::-1]
    assert ds[[(3, 9), (3, 9)]]['nets'][0] == ds[[(3, 9), (3, 9)]]['nets'][1]


def test_dlr_optimizers_and_member_seeds():
    from mm_ext.mmpretrain.grafting import GraftingOptimWrapperConstructor
    net = dict(type='ImageClassifier', backbone=dict(type='PFFCifarResNet', depth=8, base_channels=4),
               neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', num_classes=10, in_channels=16))
    m = _build(dict(type='GraftingClassifier', net=net, num_nets=2, init_seed=3))
    m.init_weights()
    opt = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
    ow = GraftingOptimWrapperConstructor(dict(opt, lr_mode='diff'))(m)
    assert ow['net0'].optimizer.param_groups[0]['lr'] == pytest.approx(0.05)
    assert ow['net1'].optimizer.param_groups[0]['lr'] == pytest.approx(0.1)
    ps = set(map(id, ow['net0'].optimizer.param_groups[0]['params']))
    assert ps == set(map(id, m.nets['0'].parameters()))
    # members differ; a model built again with the same seed has the same members
    m2 = _build(dict(type='GraftingClassifier', net=net, num_nets=2, init_seed=3))
    m2.init_weights()
    w = 'backbone.conv1.weight'
    assert not torch.equal(m.nets['0'].state_dict()[w], m.nets['1'].state_dict()[w])
    assert torch.equal(m.nets['1'].state_dict()[w], m2.nets['1'].state_dict()[w])


def test_grafting_accuracy_hand_computed():
    from mm_ext.mmpretrain.grafting import GraftingAccuracy
    from mmpretrain.structures import DataSample
    metric = GraftingAccuracy()
    scores = [([[.9, .1], [.4, .6]], 0), ([[.2, .8], [.3, .7]], 1), ([[.6, .4], [.45, .55]], 1)]
    samples = []
    for s, y in scores:
        ds = DataSample().set_gt_label(y)
        ds.set_field(torch.tensor(s), 'net_scores')
        samples.append(ds.to_dict())
    metric.process(None, samples)
    out = metric.evaluate(3)
    # net0: right on 1, 2 -> 2/3; net1: right on 2, 3 -> 2/3; ensemble means: (.65,.35) (.25,.75) (.525,.475)
    assert out['accuracy/net0_top1'] == pytest.approx(200 / 3)
    assert out['accuracy/net1_top1'] == pytest.approx(200 / 3)
    assert out['accuracy/ensemble_top1'] == pytest.approx(200 / 3)
    assert out['accuracy/top1'] == pytest.approx(200 / 3)


# ------------------------------------------------------------------------------ end to end
def _tiny_cfg(dataset, work_dir, epochs=3, **model):
    from mmengine.config import Config
    root = dataset('clutter-shapes-cifar', train_per_class=12, test_per_class=4, suffix='tiny')
    cfg = Config.fromfile(str(QUICK))
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'test_grafting_{Path(work_dir).name}'
    for dl in (cfg.train_dataloader.dataset.dataset, cfg.val_dataloader.dataset):
        dl.data_root = str(root)
    cfg.train_dataloader.batch_size = 16
    cfg.model.net.backbone.update(depth=8, base_channels=4)
    cfg.model.net.head.in_channels = 16
    cfg.model.update(model)
    cfg.train_dataloader.sampler.num_streams = cfg.model.num_nets
    if cfg.model.get('dgd') and cfg.model.dgd.get('teacher_inputs') == 'shared':
        cfg.train_dataloader.sampler.shared_order = True
    cfg.train_cfg.max_epochs = epochs
    cfg.param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[2], gamma=0.1)]
    cfg.default_hooks.logger.interval = 100
    return cfg


def _member_states(model):
    model = getattr(model, 'module', model)
    return {g: {k: v.detach().clone() for k, v in s.items()} for g, s in model.local_states().items()}


def _assert_same(a, b, atol=0.0):
    assert set(a) == set(b)
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=k)
        else:
            assert torch.equal(a[k], b[k]), k


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_kill_and_resume_gives_the_same_weights(dataset, tmp_path):
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    class Kill(Hook):
        priority = 'LOWEST'

        def before_train_epoch(self, runner):
            if runner.epoch == 2:
                raise _Killed()

    full = Runner.from_cfg(_tiny_cfg(dataset, tmp_path / 'full', epochs=4))
    full.train()
    ref = _member_states(full.model)
    cfg = _tiny_cfg(dataset, tmp_path / 'killed', epochs=4)
    killed = Runner.from_cfg(copy.deepcopy(cfg))
    killed.register_hook(Kill())
    with pytest.raises(_Killed):
        killed.train()
    cfg.resume = True
    cfg.experiment_name += '_resumed'
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    got = _member_states(resumed.model)
    for g in ref:
        _assert_same(ref[g], got[g])
    hooks = [h for h in resumed.hooks if type(h).__name__ == 'GraftingHook']
    assert [r['epoch'] for r in hooks[0].history] == [1, 1, 2, 2, 3, 3]


def _rank_mode(cfg, tmp_path, n):
    cfg_path = tmp_path / 'rank_cfg.py'
    cfg.dump(str(cfg_path))
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(free_port()), PYTHON=sys.executable)
    out = subprocess.run(['bash', str(REPO / 'tools/dist_train.sh'), str(cfg_path), str(n)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _load_ckpt(path):
    import mm_ext  # noqa: F401  safe torch.load for mmengine checkpoints
    from mmengine.runner.checkpoint import _load_checkpoint
    return _load_checkpoint(str(path), map_location='cpu')


@pytest.mark.slow
@pytest.mark.parametrize('n,dgd', [(2, None), (3, dict(weight=1.0, temperature=2.0)),
                                   (2, dict(teacher_inputs='shared', mode='soft_ce'))])
def test_rank_mode_equals_one_process(dataset, tmp_path, n, dgd):
    from mmengine.runner import Runner
    cfg = _tiny_cfg(dataset, tmp_path / 'process', epochs=3, num_nets=n, dgd=dgd)
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    runner.train()
    ref = _member_states(runner.model)
    cfg.work_dir = str(tmp_path / 'ranks')
    cfg.experiment_name += '_ranks'
    _rank_mode(cfg, tmp_path, n)
    ck = _load_ckpt(tmp_path / 'ranks' / 'epoch_3.pth')
    ranks = ck['grafting']['ranks']
    assert len(ranks) == n
    for g in range(n):
        sd = {k[len(f'nets.{g}.'):]: v for k, v in ranks[g]['state_dict'].items() if k.startswith(f'nets.{g}.')}
        _assert_same(ref[g], sd, atol=1e-6)


@pytest.mark.parametrize('level', ['layer', 'filter'])
def test_hook_grafts_every_member_with_its_pre_graft_predecessor(tmp_path, level):
    from types import SimpleNamespace

    from mmengine.logging import MessageHub, MMLogger

    from mm_ext.core.grafting import conv_bn_pairs, filter_coefficients, graft_state_dict, layer_coefficients
    from mm_ext.mmpretrain.grafting import GraftingHook
    net = dict(type='ImageClassifier', backbone=dict(type='PFFCifarVGG', cfg=(8, 'M', 16), bn_weight_init=1.0),
               neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', num_classes=10, in_channels=16))
    m = _build(dict(type='GraftingClassifier', net=net, num_nets=3, init_seed=1))
    m.init_weights()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, n in m.local_items():  # make the members' BN gammas and entropies differ
            for p in n.parameters():
                p.mul_(torch.rand(p.shape, generator=g) + 0.5)
    before = {k: {n: t.clone() for n, t in s.items()} for k, s in m.local_states().items()}
    runner = SimpleNamespace(model=m, message_hub=MessageHub.get_instance('test_grafting_hook'),
                             logger=MMLogger.get_instance('test_grafting_hook'), work_dir=str(tmp_path), epoch=1)
    hook = GraftingHook(level=level, c=5.0)
    hook.before_run(runner)
    hook.before_train_epoch(runner)
    after = m.local_states()
    _, n0 = m.local_items()[0]
    pairs = conv_bn_pairs(n0, lambda: n0(torch.zeros(2, 3, 32, 32), mode='tensor'))
    for k in range(3):
        own, pred = before[k], before[(k - 1) % 3]
        drivers = structural_drivers(n0, lambda: n0(torch.zeros(2, 3, 32, 32), mode='tensor'), list(own))
        co, _ = layer_coefficients(own, pred, drivers, c=5.0)
        if level == 'filter':
            co = filter_coefficients(own, pred, pairs, co)
        ref = graft_state_dict(own, pred, co)
        for name in ref:
            assert torch.equal(after[k][name], ref[name]), name
    assert len(hook.history) == 3 and (tmp_path / 'grafting.jsonl').read_text().count('\n') == 3
    hook.before_train_epoch(SimpleNamespace(**{**vars(runner), 'epoch': 0}))  # the first epoch never grafts
    assert len(hook.history) == 3


def test_clutter_shapes_reads_through_generated_cifar10(dataset):
    from mmpretrain.registry import DATASETS
    root = dataset('clutter-shapes-cifar', train_per_class=12, test_per_class=4, suffix='tiny')
    ds = DATASETS.build(dict(type='GeneratedCIFAR10', data_root=str(root), split='train', pipeline=[]))
    assert len(ds) == 120 and ds.metainfo['classes'][0] == 'disk'
    assert ds[0]['img'].shape == (32, 32, 3)


# ------------------------------------------------------------------------------ DGD
_TINY_NET = dict(type='ImageClassifier', backbone=dict(type='PFFCifarResNet', depth=8, base_channels=4),
                 neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', num_classes=10, in_channels=16))


def test_dgd_default_loss_is_stationary_when_the_student_equals_its_teacher():
    # Online members teach each other, so the loss must be minimal at student == teacher. The offline
    # prototype's soft CE (teacher at T = 1, student at T = 2) is minimal at student = 2 * teacher: its
    # gradient at student == teacher is T * (softmax(z / T) - softmax(z)) != 0 (hand-derived).
    m = _build(dict(type='GraftingClassifier', net=_TINY_NET, num_nets=2, dgd=dict()))
    z = torch.randn(6, 10, generator=torch.Generator().manual_seed(0)) * 3
    s = z.clone().requires_grad_()
    m.dgd_term(s, z).backward()
    torch.testing.assert_close(s.grad, torch.zeros_like(z), rtol=0, atol=1e-6)
    m.dgd['mode'] = 'soft_ce'
    s = z.clone().requires_grad_()
    m.dgd_term(s, z).backward()
    expected = 2 * (torch.softmax(z / 2, 1) - torch.softmax(z, 1)) / z.shape[0]
    torch.testing.assert_close(s.grad, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('mode,bounded', [(None, True), ('soft_ce', False)])
def test_dgd_mutual_distillation_keeps_the_logit_scale(mode, bounded):
    # Two members' logits trained only by the model's DGD term against each other (detached teachers):
    # with the default the pair meets in between (scale stays put); the prototype's asymmetric soft CE
    # multiplies the scale by T per round (what collapsed the first DGD runs).
    m = _build(dict(type='GraftingClassifier', net=_TINY_NET, num_nets=2, dgd={} if mode is None else dict(mode=mode)))
    g = torch.Generator().manual_seed(1)
    z = [torch.randn(8, 10, generator=g).requires_grad_() for _ in range(2)]
    scale0 = max(float(t.std(1).mean()) for t in z)
    opt = torch.optim.SGD(z, lr=2.0)
    for _ in range(300):
        opt.zero_grad()
        (m.dgd_term(z[0], z[1].detach()) + m.dgd_term(z[1], z[0].detach())).backward()
        opt.step()
    scale = max(float(t.std(1).mean()) for t in z)
    if bounded:
        assert scale <= scale0 * 1.01
        torch.testing.assert_close(z[0].softmax(1), z[1].softmax(1), rtol=0, atol=1e-3)  # they agree
    else:
        assert scale > 3 * scale0


@pytest.mark.parametrize('n', [2, 3])
def test_dgd_teacher_is_the_other_members_train_mode_logits_on_the_students_batch(n):
    m = _build(dict(type='GraftingClassifier', net=_TINY_NET, num_nets=n, dgd=dict(), init_seed=3))
    m.init_weights()
    m.train()
    g = torch.Generator().manual_seed(2)
    xs = [torch.randn(5, 3, 32, 32, generator=g) for _ in range(n)]
    bn = {k: v.clone() for k, v in m.state_dict().items() if 'running' in k or 'num_batches' in k}
    got = m._cross_teachers(xs)
    assert all(net.training for _, net in m.local_items())
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in bn.items())  # the teacher pass updates no BN stats
    nets = [net for _, net in m.local_items()]
    for i in range(n):
        ref = []
        for j in range(n):
            if j != i:
                ref.append(copy.deepcopy(nets[j]).train()(xs[i], mode='tensor'))  # BN batch statistics
        torch.testing.assert_close(got[i], sum(ref) / (n - 1), rtol=1e-5, atol=1e-6)
        assert not got[i].requires_grad
